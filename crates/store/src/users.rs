//! People: users, the one-time codes that prove they hold their phone, the development SMS
//! outbox those codes go through, and login sessions. None of it moves money, so none of it
//! waits for the sequencer; a user's wallet is a ledger account created through it.

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Time-sortable, chosen by the service (see `services::ids`).
    pub id: u64,
    /// E.164, e.g. `+8613800138000`.
    pub phone: String,
    /// Argon2id PHC string of the login password.
    pub password_hash: String,
    /// The user's wallet in the ledger.
    pub wallet_account_id: u128,
    /// Unix seconds.
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub phone: String,
    pub password_hash: String,
    pub wallet_account_id: u128,
    /// Real-name tier: 0 registered, 1 bank card bound, 2 documents checked.
    pub tier: u8,
    pub created_at: u64,
    /// Argon2id PHC string of the 6-digit payment password, once set.
    pub payment_password_hash: Option<String>,
    /// Wrong payment passwords in a row.
    pub payment_failures: u32,
    /// Paying is locked until this time (Unix seconds; 0: not locked).
    pub payment_locked_until: u64,
}

/// A one-time code waiting to be used: only its digest is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeCode {
    pub digest: [u8; 32],
    pub created_at: u64,
    pub expires_at: u64,
    /// Wrong guesses so far.
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMessage {
    pub id: u64,
    pub phone: String,
    pub text: String,
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: u64,
    pub created_at: u64,
    pub expires_at: u64,
    pub revoked: bool,
}

/// Users, codes, the SMS outbox and sessions, each call its own durable transaction.
pub trait UserStore: Send {
    /// Stores a user; `false` when the phone number or the id is already taken.
    fn create_user(&mut self, user: &NewUser) -> StoreResult<bool>;
    fn user(&mut self, id: u64) -> StoreResult<Option<User>>;
    fn user_by_phone(&mut self, phone: &str) -> StoreResult<Option<User>>;
    /// Sets (or changes) the payment password and clears its failures and lock.
    fn set_payment_password(&mut self, user_id: u64, hash: &str) -> StoreResult<()>;
    /// Counts a payment password attempt before it is checked, atomically, so that parallel
    /// guesses are counted too: unless paying is locked at `now`, the count of tries in a row
    /// goes up by one (to 1 after a lock that has run out), and when it reaches
    /// `attempts_max` paying locks until `lock_until`. Returns the count and the lock, or
    /// `None` when paying was already locked (or there is no such user).
    fn count_payment_attempt(
        &mut self,
        user_id: u64,
        now: u64,
        attempts_max: u32,
        lock_until: u64,
    ) -> StoreResult<Option<(u32, u64)>>;
    /// A right payment password: the count and the lock are cleared.
    fn clear_payment_attempts(&mut self, user_id: u64) -> StoreResult<()>;
    /// Raises (or lowers) a user's real-name tier.
    fn set_tier(&mut self, user_id: u64, tier: u8) -> StoreResult<()>;
    /// Replaces the code for (phone, purpose).
    fn put_code(&mut self, phone: &str, purpose: &str, code: &OneTimeCode) -> StoreResult<()>;
    fn code(&mut self, phone: &str, purpose: &str) -> StoreResult<Option<OneTimeCode>>;
    /// Counts one wrong guess against the code.
    fn count_code_attempt(&mut self, phone: &str, purpose: &str) -> StoreResult<()>;
    /// Records a signed request's nonce for its API key at `now`; `false` when it was recorded
    /// before (a replay). Nonces recorded before `forget_before` are forgotten first.
    fn claim_nonce(
        &mut self,
        key_id: u64,
        nonce: &str,
        now: u64,
        forget_before: u64,
    ) -> StoreResult<bool>;
    /// Removes the code (used, or given up on).
    fn delete_code(&mut self, phone: &str, purpose: &str) -> StoreResult<()>;
    /// Puts a message in the outbox of the development SMS gateway.
    fn send_sms(&mut self, phone: &str, text: &str, at: u64) -> StoreResult<u64>;
    /// The newest `limit` messages, newest first.
    fn sms_outbox(&mut self, limit: usize) -> StoreResult<Vec<SmsMessage>>;
    fn create_session(&mut self, digest: &[u8; 32], session: &Session) -> StoreResult<()>;
    fn session(&mut self, digest: &[u8; 32]) -> StoreResult<Option<Session>>;
    /// `false` when there was no such live session.
    fn revoke_session(&mut self, digest: &[u8; 32]) -> StoreResult<bool>;
}
