//! Users: register with a phone number, a login password and a one-time code sent to that
//! phone; log in with all three; sessions that expire and can be revoked. Each user gets a
//! wallet: a ledger account that may never go negative.
//!
//! Secrets are kept as digests only: the password as an Argon2id PHC string, codes and session
//! tokens as SHA-256. A failed login never says which factor was wrong.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ledger::{AccountFlags, Currency, Event, EventResult, NewAccount};
use sequencer::SequencerHandle;
use std::collections::HashMap;
use std::sync::Mutex;

use store::{NewUser, OneTimeCode, Session, StoreError, User};

use crate::secrets::{self, RandomError};
use crate::support::Handles;

/// The ledger's `kind` code of a user's wallet account.
pub const WALLET_ACCOUNT_KIND: u16 = crate::accounts::KIND_WALLET;
pub const PASSWORD_CHARS_MIN: usize = 8;
pub const PASSWORD_BYTES_MAX: usize = 128;
/// E.164: a country code and a subscriber number, at most 15 digits in all.
pub const PHONE_DIGITS_MIN: usize = 8;
pub const PHONE_DIGITS_MAX: usize = 15;
pub const CODE_DIGITS: usize = 6;
/// A payment password is six digits, as wallets' keypads ask for.
pub const PAYMENT_PASSWORD_DIGITS: usize = 6;
const SESSION_TOKEN_PREFIX: &str = "sess_";

/// What a one-time code is for: a code sent to log in cannot be used to register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    Register,
    Login,
    /// Setting or changing the payment password.
    PaymentPassword,
}

impl CodePurpose {
    pub fn name(self) -> &'static str {
        match self {
            CodePurpose::Register => "register",
            CodePurpose::Login => "login",
            CodePurpose::PaymentPassword => "payment_password",
        }
    }

    pub fn from_name(name: &str) -> Option<CodePurpose> {
        [
            CodePurpose::Register,
            CodePurpose::Login,
            CodePurpose::PaymentPassword,
        ]
        .into_iter()
        .find(|purpose| purpose.name() == name)
    }
}

#[derive(Debug, Clone)]
pub struct UserConfig {
    /// The currency of every wallet (one currency per operator, for now).
    pub currency: Currency,
    pub code_lifetime_s: u64,
    /// A new code for the same phone and purpose no sooner than this.
    pub code_resend_s: u64,
    /// Wrong guesses a code survives.
    pub code_attempts_max: u32,
    pub session_lifetime_s: u64,
    /// Wrong payment passwords in a row before paying is locked.
    pub payment_attempts_max: u32,
    /// How long paying stays locked after that.
    pub payment_lock_s: u64,
}

impl Default for UserConfig {
    fn default() -> Self {
        UserConfig {
            currency: Currency::parse("CNY").expect("valid code"),
            code_lifetime_s: 300,
            code_resend_s: 60,
            code_attempts_max: 5,
            session_lifetime_s: 30 * 24 * 3600,
            payment_attempts_max: 5,
            payment_lock_s: 3 * 3600,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UserError {
    #[error("a phone number is + and {PHONE_DIGITS_MIN} to {PHONE_DIGITS_MAX} digits (E.164), e.g. +8613800138000")]
    InvalidPhone,
    #[error(
        "a password is {PASSWORD_CHARS_MIN} to {PASSWORD_BYTES_MAX} bytes and not only digits"
    )]
    WeakPassword,
    #[error("a code was sent less than {retry_in_s} s ago; wait before asking again")]
    CodeThrottled { retry_in_s: u64 },
    #[error("the one-time code is wrong or was not sent")]
    CodeInvalid,
    #[error("the one-time code has expired; ask for a new one")]
    CodeExpired,
    #[error("too many wrong codes; ask for a new one")]
    CodeAttemptsExceeded,
    #[error("this phone number already has an account")]
    PhoneTaken,
    #[error("the phone number, password or code is wrong")]
    WrongCredentials,
    #[error("the session is missing, expired or revoked")]
    Unauthenticated,
    #[error("a payment password is exactly {PAYMENT_PASSWORD_DIGITS} digits")]
    InvalidPaymentPassword,
    #[error("no payment password is set yet")]
    PaymentPasswordNotSet,
    #[error("wrong payment password; {attempts_left} tries left before paying is locked")]
    WrongPaymentPassword { attempts_left: u32 },
    #[error("paying is locked after too many wrong payment passwords, until {until} (Unix time)")]
    PaymentLocked { until: u64 },
    #[error("{0}")]
    Random(#[from] RandomError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the ledger refused the wallet: {0}")]
    Ledger(String),
}

/// The stable machine code of a user error.
pub fn error_code(error: &UserError) -> &'static str {
    match error {
        UserError::InvalidPhone => "invalid_phone",
        UserError::WeakPassword => "weak_password",
        UserError::CodeThrottled { .. } => "code_throttled",
        UserError::CodeInvalid => "invalid_code",
        UserError::CodeExpired => "code_expired",
        UserError::CodeAttemptsExceeded => "code_attempts_exceeded",
        UserError::PhoneTaken => "phone_taken",
        UserError::WrongCredentials => "wrong_credentials",
        UserError::Unauthenticated => "unauthenticated",
        UserError::InvalidPaymentPassword => "invalid_payment_password",
        UserError::PaymentPasswordNotSet => "payment_password_not_set",
        UserError::WrongPaymentPassword { .. } => "wrong_payment_password",
        UserError::PaymentLocked { .. } => "payment_locked",
        UserError::Random(_) | UserError::Store(_) | UserError::Ledger(_) => "internal",
    }
}

/// `+` and digits, as typed (spaces and dashes removed).
pub fn parse_phone(text: &str) -> Result<String, UserError> {
    let compact: String = text
        .chars()
        .filter(|character| *character != ' ' && *character != '-')
        .collect();
    let digits = compact.strip_prefix('+').ok_or(UserError::InvalidPhone)?;
    let valid = (PHONE_DIGITS_MIN..=PHONE_DIGITS_MAX).contains(&digits.len())
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && !digits.starts_with('0');
    if valid {
        Ok(compact)
    } else {
        Err(UserError::InvalidPhone)
    }
}

pub fn check_password(password: &str) -> Result<(), UserError> {
    let long_enough = password.chars().count() >= PASSWORD_CHARS_MIN;
    let short_enough = password.len() <= PASSWORD_BYTES_MAX;
    let not_only_digits = !password.chars().all(|character| character.is_ascii_digit());
    if long_enough && short_enough && not_only_digits {
        Ok(())
    } else {
        Err(UserError::WeakPassword)
    }
}

/// The Argon2id PHC string of `password`, with the RFC 9106 / OWASP parameters of the crate's
/// defaults (19 MiB, 2 passes, 1 lane) and a random salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let salt_bytes = secrets::random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|error| UserError::Ledger(format!("salt: {error}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| UserError::Ledger(format!("hashing: {error}")))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn code_digest(phone: &str, purpose: CodePurpose, code: &str) -> [u8; 32] {
    secrets::sha256(&[
        b"one-time-code",
        phone.as_bytes(),
        purpose.name().as_bytes(),
        code.as_bytes(),
    ])
}

fn token_digest(token: &str) -> [u8; 32] {
    secrets::sha256(&[b"session", token.as_bytes()])
}

/// A new session: the token (shown once, to the client) and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub token: String,
    pub user: User,
    pub expires_at: u64,
}

/// The user workflows. Blocking (SQLite, Argon2id): call them off the async runtime.
pub struct Users {
    handles: Arc<Handles>,
    sms: Arc<dyn crate::sms::SmsGateway>,
    ledger: SequencerHandle,
    config: UserConfig,
    /// A hash to verify against when the phone is unknown, so that a login takes as long
    /// whether or not the number has an account.
    decoy_hash: String,
    /// Payment passwords verified in a session, as a keyed digest (never the password), so
    /// that the next payment in the session skips Argon2id, as an app that keeps the user
    /// "signed in to pay" would.
    payment_cache: Mutex<HashMap<[u8; 32], CachedPaymentPassword>>,
    /// Keys the cache's digests; drawn at start, never stored.
    cache_salt: [u8; 32],
    /// Sessions recently looked up: token digest → the user (see [`SESSION_CACHE_S`]).
    sessions: Mutex<HashMap<[u8; 32], CachedSession>>,
    /// Serialise a user's Argon2id payment-password checks (striped by user id).
    payment_checks: Vec<Mutex<()>>,
}

const PAYMENT_CHECK_STRIPES: usize = 256;

/// How long a session looked up in the store is trusted from memory: a session revoked on
/// another node stops working here within this time (at once on this node), and a change to
/// the user's row (tier, payment lock) is seen within it.
pub const SESSION_CACHE_S: u64 = 2;
/// Sessions remembered at most.
pub const SESSION_CACHE_ENTRIES_MAX: usize = 100_000;

#[derive(Debug, Clone)]
struct CachedSession {
    user: User,
    expires_at: u64,
    fresh_until: u64,
}

/// How long a verified payment password is remembered for its session.
pub const PAYMENT_PASSWORD_CACHE_S: u64 = 15 * 60;
/// Sessions whose payment password is remembered, at most.
pub const PAYMENT_PASSWORD_CACHE_ENTRIES_MAX: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct CachedPaymentPassword {
    user_id: u64,
    digest: [u8; 32],
    until: u64,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Users")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Users {
    pub fn new(
        handles: Arc<Handles>,
        sms: Arc<dyn crate::sms::SmsGateway>,
        ledger: SequencerHandle,
        config: UserConfig,
    ) -> Result<Users, UserError> {
        Ok(Users {
            handles,
            sms,
            payment_cache: Mutex::new(HashMap::new()),
            cache_salt: secrets::random_bytes::<32>()?,
            sessions: Mutex::new(HashMap::new()),
            payment_checks: (0..PAYMENT_CHECK_STRIPES).map(|_| Mutex::new(())).collect(),
            ledger,
            config,
            decoy_hash: hash_password("decoy password, never anyone's")?,
        })
    }

    pub fn config(&self) -> &UserConfig {
        &self.config
    }

    /// Sends a one-time code by SMS. For `Login` the code goes out only when the number has an
    /// account, but the answer is the same either way: it does not tell who is a user.
    pub fn send_code(
        &self,
        phone: &str,
        purpose: CodePurpose,
        now_s: u64,
    ) -> Result<(), UserError> {
        let phone = parse_phone(phone)?;
        let mut users = self.handles.user_writer()?;
        if let Some(previous) = users.code(&phone, purpose.name())? {
            let allowed_at = previous.created_at + self.config.code_resend_s;
            if now_s < allowed_at {
                return Err(UserError::CodeThrottled {
                    retry_in_s: allowed_at - now_s,
                });
            }
        }
        let code = secrets::random_digits(CODE_DIGITS)?;
        users.put_code(
            &phone,
            purpose.name(),
            &OneTimeCode {
                digest: code_digest(&phone, purpose, &code),
                created_at: now_s,
                expires_at: now_s + self.config.code_lifetime_s,
                attempts: 0,
            },
        )?;
        if purpose != CodePurpose::Register && users.user_by_phone(&phone)?.is_none() {
            return Ok(());
        }
        let text = format!(
            "Tally: your code to {} is {code}. It expires in {} minutes. Never share it.",
            match purpose {
                CodePurpose::Register => "open your wallet",
                CodePurpose::Login => "log in",
                CodePurpose::PaymentPassword => "set your payment password",
            },
            self.config.code_lifetime_s / 60
        );
        // The code is stored before it is sent: a message that fails leaves a code nobody got,
        // and the user asks again after the resend delay.
        drop(users);
        self.sms
            .send(&phone, &text, now_s)
            .map_err(|error| UserError::Ledger(format!("sending the code: {error}")))?;
        Ok(())
    }

    /// Uses up a code: right → removed and `Ok`; wrong → one more attempt counted.
    fn check_code(
        &self,
        phone: &str,
        purpose: CodePurpose,
        code: &str,
        now_s: u64,
    ) -> Result<(), UserError> {
        let mut users = self.handles.user_writer()?;
        let stored = users
            .code(phone, purpose.name())?
            .ok_or(UserError::CodeInvalid)?;
        if now_s >= stored.expires_at {
            users.delete_code(phone, purpose.name())?;
            return Err(UserError::CodeExpired);
        }
        if stored.attempts >= self.config.code_attempts_max {
            users.delete_code(phone, purpose.name())?;
            return Err(UserError::CodeAttemptsExceeded);
        }
        if code.len() == CODE_DIGITS
            && secrets::equal(&stored.digest, &code_digest(phone, purpose, code))
        {
            users.delete_code(phone, purpose.name())?;
            Ok(())
        } else {
            users.count_code_attempt(phone, purpose.name())?;
            Err(UserError::CodeInvalid)
        }
    }

    /// Opens an account: checks the code sent to the phone, creates the wallet in the ledger
    /// and the user.
    pub fn register(
        &self,
        phone: &str,
        password: &str,
        code: &str,
        now_s: u64,
    ) -> Result<User, UserError> {
        let phone = parse_phone(phone)?;
        check_password(password)?;
        if self.handles.user_store()?.user_by_phone(&phone)?.is_some() {
            return Err(UserError::PhoneTaken);
        }
        self.check_code(&phone, CodePurpose::Register, code, now_s)?;
        let password_hash = hash_password(password)?;
        let id = crate::ids::new_id(now_s.saturating_mul(1000))?;
        // The wallet first: creating it again (a retry) answers `exists` and moves nothing.
        // Its statement comes from the history index; it keeps no balance snapshot per
        // transfer (the `HISTORY` flag), a row per transfer in an (account, time) index that
        // would cost every payment, grab and transfer a scattered insert.
        let wallet = NewAccount {
            id: u128::from(id),
            currency: self.config.currency,
            kind: WALLET_ACCOUNT_KIND,
            flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            user_data: 0,
        };
        let results = self
            .ledger
            .execute(vec![Event::CreateAccount(wallet)])
            .map_err(|error| UserError::Ledger(error.to_string()))?;
        if !matches!(results.first(), Some(EventResult::Ok | EventResult::Exists)) {
            return Err(UserError::Ledger(format!("{results:?}")));
        }
        let user = NewUser {
            id,
            phone: phone.clone(),
            password_hash,
            wallet_account_id: u128::from(id),
            created_at: now_s,
        };
        if !self.handles.user_writer()?.create_user(&user)? {
            return Err(UserError::PhoneTaken);
        }
        self.handles.user_store()?.user(id)?.ok_or_else(|| {
            UserError::Store(StoreError::corrupt("a user vanished after its creation"))
        })
    }

    /// Logs in with the phone, the password and a code sent for `Login`. Any wrong factor
    /// answers [`UserError::WrongCredentials`], and the code is used up either way.
    pub fn login(
        &self,
        phone: &str,
        password: &str,
        code: &str,
        now_s: u64,
    ) -> Result<NewSession, UserError> {
        let phone = parse_phone(phone).map_err(|_| UserError::WrongCredentials)?;
        let user = self.handles.user_store()?.user_by_phone(&phone)?;
        let password_right = match &user {
            Some(user) => verify_password(password, &user.password_hash),
            None => {
                let _ = verify_password(password, &self.decoy_hash);
                false
            }
        };
        let code_checked = self.check_code(&phone, CodePurpose::Login, code, now_s);
        let user = match (user, password_right, code_checked) {
            (Some(user), true, Ok(())) => user,
            (_, _, Err(UserError::CodeExpired)) => return Err(UserError::CodeExpired),
            (_, _, Err(UserError::CodeAttemptsExceeded)) => {
                return Err(UserError::CodeAttemptsExceeded)
            }
            (_, _, Err(error @ (UserError::Store(_) | UserError::Random(_)))) => return Err(error),
            _ => {
                if password_right {
                    // The password was right but the code not: use the code up anyway, so
                    // that guesses cannot tell which factor failed.
                    self.handles
                        .user_writer()?
                        .delete_code(&phone, CodePurpose::Login.name())?;
                }
                return Err(UserError::WrongCredentials);
            }
        };
        let token = format!(
            "{SESSION_TOKEN_PREFIX}{}",
            secrets::hex(&secrets::random_bytes::<32>()?)
        );
        let expires_at = now_s + self.config.session_lifetime_s;
        self.handles.user_writer()?.create_session(
            &token_digest(&token),
            &Session {
                user_id: user.id,
                created_at: now_s,
                expires_at,
                revoked: false,
            },
        )?;
        Ok(NewSession {
            token,
            user,
            expires_at,
        })
    }

    /// The user behind a session token.
    pub fn authenticate(&self, token: &str, now_s: u64) -> Result<User, UserError> {
        if !token.starts_with(SESSION_TOKEN_PREFIX)
            || token.len() != SESSION_TOKEN_PREFIX.len() + 64
        {
            return Err(UserError::Unauthenticated);
        }
        let digest = token_digest(token);
        let cached = self
            .sessions
            .lock()
            .expect("session cache")
            .get(&digest)
            .filter(|cached| now_s < cached.fresh_until && now_s < cached.expires_at)
            .map(|cached| cached.user.clone());
        if let Some(user) = cached {
            return Ok(user);
        }
        let mut users = self.handles.user_store()?;
        let session = users
            .session(&digest)?
            .filter(|session| !session.revoked && now_s < session.expires_at)
            .ok_or(UserError::Unauthenticated)?;
        let user = users
            .user(session.user_id)?
            .ok_or(UserError::Unauthenticated)?;
        let mut sessions = self.sessions.lock().expect("session cache");
        if sessions.len() >= SESSION_CACHE_ENTRIES_MAX {
            sessions.retain(|_, cached| now_s < cached.fresh_until);
            if sessions.len() >= SESSION_CACHE_ENTRIES_MAX {
                sessions.clear();
            }
        }
        sessions.insert(
            digest,
            CachedSession {
                user: user.clone(),
                expires_at: session.expires_at,
                fresh_until: now_s + SESSION_CACHE_S,
            },
        );
        Ok(user)
    }

    /// Forgets what this process remembers of a user (after a change to the user's row).
    pub fn forget_user(&self, user_id: u64) {
        self.sessions
            .lock()
            .expect("session cache")
            .retain(|_, cached| cached.user.id != user_id);
    }

    /// Sets or changes the payment password; either needs a code sent to the user's phone for
    /// [`CodePurpose::PaymentPassword`]. Clears a lock.
    pub fn set_payment_password(
        &self,
        user: &User,
        payment_password: &str,
        code: &str,
        now_s: u64,
    ) -> Result<(), UserError> {
        if payment_password.len() != PAYMENT_PASSWORD_DIGITS
            || !payment_password.bytes().all(|byte| byte.is_ascii_digit())
        {
            return Err(UserError::InvalidPaymentPassword);
        }
        self.check_code(&user.phone, CodePurpose::PaymentPassword, code, now_s)?;
        let hash = hash_password(payment_password)?;
        self.handles
            .user_writer()?
            .set_payment_password(user.id, &hash)?;
        self.forget_payment_password(user.id);
        self.forget_user(user.id);
        Ok(())
    }

    fn forget_payment_password(&self, user_id: u64) {
        self.payment_cache
            .lock()
            .expect("payment cache")
            .retain(|_, cached| cached.user_id != user_id);
    }

    fn cache_digest(&self, payment_password: &str) -> [u8; 32] {
        secrets::sha256(&[&self.cache_salt, payment_password.as_bytes()])
    }

    /// Whether the payment password is the one this session proved lately (see
    /// [`Users::verify_payment_password_in_session`]): a keyed digest and a lookup, cheap
    /// enough for an async thread. `false` means the slow, counted check must run; a lock on
    /// paying is an error either way.
    pub fn payment_password_remembered(
        &self,
        session_token: &str,
        user: &User,
        payment_password: &str,
        now_s: u64,
    ) -> Result<bool, UserError> {
        if now_s < user.payment_locked_until {
            return Err(UserError::PaymentLocked {
                until: user.payment_locked_until,
            });
        }
        let session = token_digest(session_token);
        let digest = self.cache_digest(payment_password);
        Ok(self.remembered(&session, user.id, &digest, now_s))
    }

    /// Whether `session` proved the password of `digest` for `user_id` lately.
    fn remembered(&self, session: &[u8; 32], user_id: u64, digest: &[u8; 32], now_s: u64) -> bool {
        self.payment_cache
            .lock()
            .expect("payment cache")
            .get(session)
            .is_some_and(|cached| {
                cached.user_id == user_id
                    && now_s < cached.until
                    && secrets::equal(&cached.digest, digest)
            })
    }

    /// Checks the payment password for a payment in the session `session_token`. The first
    /// right password of a session is checked with Argon2id (and counted, as
    /// [`Users::verify_payment_password`] does); for [`PAYMENT_PASSWORD_CACHE_S`] after it, the
    /// same password in the same session is recognised by a keyed digest kept in memory. A
    /// different password always takes the counted path, and a lock always applies.
    pub fn verify_payment_password_in_session(
        &self,
        session_token: &str,
        user: &User,
        payment_password: &str,
        now_s: u64,
    ) -> Result<(), UserError> {
        if self.payment_password_remembered(session_token, user, payment_password, now_s)? {
            return Ok(());
        }
        let session = token_digest(session_token);
        let digest = self.cache_digest(payment_password);
        // One Argon2id check at a time per user: parallel payments of one user wait for the
        // first check instead of each counting a try (which would lock a user paying several
        // orders at once), and parallel guesses are still counted one by one.
        let stripe = (user.id % PAYMENT_CHECK_STRIPES as u64) as usize;
        let _one_at_a_time = self.payment_checks[stripe]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.remembered(&session, user.id, &digest, now_s) {
            return Ok(());
        }
        self.verify_payment_password(user.id, payment_password, now_s)?;
        let mut cache = self.payment_cache.lock().expect("payment cache");
        if cache.len() >= PAYMENT_PASSWORD_CACHE_ENTRIES_MAX {
            cache.retain(|_, cached| now_s < cached.until);
            if cache.len() >= PAYMENT_PASSWORD_CACHE_ENTRIES_MAX {
                cache.clear();
            }
        }
        cache.insert(
            session,
            CachedPaymentPassword {
                user_id: user.id,
                digest,
                until: now_s + PAYMENT_PASSWORD_CACHE_S,
            },
        );
        Ok(())
    }

    /// Checks the payment password before money moves. Each try is counted before the
    /// password is checked (so parallel guesses count too); at the configured number of tries
    /// in a row paying locks for the configured time; a right password clears the count.
    pub fn verify_payment_password(
        &self,
        user_id: u64,
        payment_password: &str,
        now_s: u64,
    ) -> Result<(), UserError> {
        let user = self
            .handles
            .user_store()?
            .user(user_id)?
            .ok_or(UserError::Unauthenticated)?;
        let hash = user
            .payment_password_hash
            .as_deref()
            .ok_or(UserError::PaymentPasswordNotSet)?;
        let attempts_max = self.config.payment_attempts_max;
        // Counted (a short write, in this process's turn), then checked with Argon2id outside
        // of the turn, so other users' writes do not wait for the hash.
        let counted = self.handles.user_writer()?.count_payment_attempt(
            user.id,
            now_s,
            attempts_max,
            now_s + self.config.payment_lock_s,
        )?;
        let Some((tries, locked_until)) = counted else {
            let until = self
                .handles
                .user_store()?
                .user(user.id)?
                .map_or(now_s, |user| user.payment_locked_until);
            return Err(UserError::PaymentLocked { until });
        };
        if verify_password(payment_password, hash) {
            self.handles
                .user_writer()?
                .clear_payment_attempts(user.id)?;
            return Ok(());
        }
        if locked_until > 0 {
            // The session cache must see the lock at once.
            self.forget_user(user.id);
            return Err(UserError::PaymentLocked {
                until: locked_until,
            });
        }
        Err(UserError::WrongPaymentPassword {
            attempts_left: attempts_max.saturating_sub(tries),
        })
    }

    /// Ends a session; its token stops working at once.
    pub fn logout(&self, token: &str) -> Result<(), UserError> {
        let digest = token_digest(token);
        self.sessions.lock().expect("session cache").remove(&digest);
        if self.handles.user_writer()?.revoke_session(&digest)? {
            self.payment_cache
                .lock()
                .expect("payment cache")
                .remove(&digest);
            Ok(())
        } else {
            Err(UserError::Unauthenticated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_e164() {
        assert_eq!(parse_phone("+86 138-0013-8000").unwrap(), "+8613800138000");
        for bad in [
            "8613800138000",
            "+0123456789",
            "+12345",
            "+1234567890123456",
            "+86abc00138000",
        ] {
            assert!(
                matches!(parse_phone(bad), Err(UserError::InvalidPhone)),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_have_a_floor_and_a_ceiling() {
        assert!(check_password("correct horse").is_ok());
        assert!(check_password("short").is_err());
        assert!(
            check_password("12345678").is_err(),
            "digits only is a PIN, not a password"
        );
        assert!(check_password(&"x".repeat(129)).is_err());
    }

    #[test]
    fn passwords_are_argon2id_with_a_salt_each() {
        let first = hash_password("correct horse").unwrap();
        let second = hash_password("correct horse").unwrap();
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "a fresh salt each time");
        assert!(verify_password("correct horse", &first));
        assert!(!verify_password("correct horse!", &first));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
