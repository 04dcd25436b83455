//! Users, one-time codes, the development SMS outbox and sessions, on a connection of their
//! own (short transactions that SQLite serialises with the sequencer's).

use rusqlite::{params, Connection, OptionalExtension, Row};
use store::{
    from_i64, NewUser, OneTimeCode, Session, SmsMessage, StoreError, StoreResult, User, UserStore,
};

use crate::map_error;

pub(crate) struct SqliteUsers {
    connection: Connection,
}

impl SqliteUsers {
    pub(crate) fn new(connection: Connection) -> Self {
        SqliteUsers { connection }
    }
}

fn integer(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unsigned(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::corrupt(format!("negative {what}")))
}

fn digest(bytes: Vec<u8>) -> StoreResult<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::corrupt("a stored digest is not 32 bytes"))
}

const USER_COLUMNS: &str = "id, phone, password_hash, wallet_account_id, tier, created_at, \
     payment_password_hash, payment_failures, payment_locked_until";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<User>> {
    let id: i64 = row.get(0)?;
    let phone: String = row.get(1)?;
    let password_hash: String = row.get(2)?;
    let wallet: i64 = row.get(3)?;
    let tier: i64 = row.get(4)?;
    let created_at: i64 = row.get(5)?;
    let payment_password_hash: Option<String> = row.get(6)?;
    let payment_failures: i64 = row.get(7)?;
    let payment_locked_until: i64 = row.get(8)?;
    Ok((|| {
        Ok(User {
            id: unsigned(id, "user id")?,
            phone,
            password_hash,
            wallet_account_id: from_i64(wallet, "wallet account id")?,
            tier: u8::try_from(tier).map_err(|_| StoreError::corrupt("tier out of range"))?,
            created_at: unsigned(created_at, "time")?,
            payment_password_hash,
            payment_failures: u32::try_from(payment_failures).unwrap_or(u32::MAX),
            payment_locked_until: unsigned(payment_locked_until, "time")?,
        })
    })())
}

impl SqliteUsers {
    fn user_where(
        &mut self,
        clause: &str,
        parameter: &dyn rusqlite::ToSql,
    ) -> StoreResult<Option<User>> {
        self.connection
            .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE {clause}"))
            .map_err(map_error)?
            .query_row([parameter], user_from_row)
            .optional()
            .map_err(map_error)?
            .transpose()
    }
}

impl UserStore for SqliteUsers {
    fn create_user(&mut self, user: &NewUser) -> StoreResult<bool> {
        let inserted = self
            .connection
            .prepare_cached(
                "INSERT INTO users (id, phone, password_hash, wallet_account_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )
            .map_err(map_error)?
            .execute(params![
                integer(user.id),
                user.phone,
                user.password_hash,
                store::to_i64(user.wallet_account_id),
                integer(user.created_at),
            ])
            .map_err(map_error)?;
        Ok(inserted == 1)
    }

    fn user(&mut self, id: u64) -> StoreResult<Option<User>> {
        self.user_where("id = ?1", &integer(id))
    }

    fn user_by_phone(&mut self, phone: &str) -> StoreResult<Option<User>> {
        self.user_where("phone = ?1", &phone)
    }

    fn set_payment_password(&mut self, user_id: u64, hash: &str) -> StoreResult<()> {
        self.connection
            .prepare_cached(
                "UPDATE users SET payment_password_hash = ?2, payment_failures = 0,
                    payment_locked_until = 0 WHERE id = ?1",
            )
            .map_err(map_error)?
            .execute(params![integer(user_id), hash])
            .map_err(map_error)?;
        Ok(())
    }

    fn count_payment_attempt(
        &mut self,
        user_id: u64,
        now: u64,
        attempts_max: u32,
        lock_until: u64,
    ) -> StoreResult<Option<(u32, u64)>> {
        let counted: Option<(i64, i64)> = self
            .connection
            .prepare_cached(
                "UPDATE users SET
                    payment_failures = CASE WHEN payment_locked_until > 0 THEN 1
                                            ELSE payment_failures + 1 END,
                    payment_locked_until = CASE
                        WHEN (CASE WHEN payment_locked_until > 0 THEN 1
                                   ELSE payment_failures + 1 END) >= ?3 THEN ?4
                        ELSE 0 END
                  WHERE id = ?1 AND payment_locked_until <= ?2
                  RETURNING payment_failures, payment_locked_until",
            )
            .map_err(map_error)?
            .query_row(
                params![
                    integer(user_id),
                    integer(now),
                    attempts_max,
                    integer(lock_until)
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(map_error)?;
        counted
            .map(|(failures, locked_until)| {
                Ok((
                    u32::try_from(failures).unwrap_or(u32::MAX),
                    unsigned(locked_until, "time")?,
                ))
            })
            .transpose()
    }

    fn clear_payment_attempts(&mut self, user_id: u64) -> StoreResult<()> {
        self.connection
            .prepare_cached(
                "UPDATE users SET payment_failures = 0, payment_locked_until = 0 WHERE id = ?1",
            )
            .map_err(map_error)?
            .execute([integer(user_id)])
            .map_err(map_error)?;
        Ok(())
    }

    fn set_tier(&mut self, user_id: u64, tier: u8) -> StoreResult<()> {
        let changed = self
            .connection
            .prepare_cached("UPDATE users SET tier = ?2 WHERE id = ?1")
            .map_err(map_error)?
            .execute(params![integer(user_id), tier])
            .map_err(map_error)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::new(
                store::StoreErrorKind::Refused,
                format!("no user {user_id}"),
            ))
        }
    }

    fn put_code(&mut self, phone: &str, purpose: &str, code: &OneTimeCode) -> StoreResult<()> {
        self.connection
            .prepare_cached(
                "INSERT INTO one_time_codes (phone, purpose, digest, created_at, expires_at, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)
                 ON CONFLICT (phone, purpose) DO UPDATE SET digest = excluded.digest,
                    created_at = excluded.created_at, expires_at = excluded.expires_at,
                    attempts = 0",
            )
            .map_err(map_error)?
            .execute(params![
                phone,
                purpose,
                &code.digest[..],
                integer(code.created_at),
                integer(code.expires_at)
            ])
            .map_err(map_error)?;
        Ok(())
    }

    fn code(&mut self, phone: &str, purpose: &str) -> StoreResult<Option<OneTimeCode>> {
        let found: Option<(Vec<u8>, i64, i64, i64)> = self
            .connection
            .prepare_cached(
                "SELECT digest, created_at, expires_at, attempts FROM one_time_codes
                  WHERE phone = ?1 AND purpose = ?2",
            )
            .map_err(map_error)?
            .query_row([phone, purpose], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()
            .map_err(map_error)?;
        found
            .map(|(bytes, created_at, expires_at, attempts)| {
                Ok(OneTimeCode {
                    digest: digest(bytes)?,
                    created_at: unsigned(created_at, "time")?,
                    expires_at: unsigned(expires_at, "time")?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                })
            })
            .transpose()
    }

    fn count_code_attempt(&mut self, phone: &str, purpose: &str) -> StoreResult<()> {
        self.connection
            .prepare_cached(
                "UPDATE one_time_codes SET attempts = attempts + 1 WHERE phone = ?1 AND purpose = ?2",
            )
            .map_err(map_error)?
            .execute([phone, purpose])
            .map_err(map_error)?;
        Ok(())
    }

    fn claim_nonce(
        &mut self,
        key_id: u64,
        nonce: &str,
        now: u64,
        forget_before: u64,
    ) -> StoreResult<bool> {
        self.connection
            .prepare_cached("DELETE FROM request_nonces WHERE seen_at < ?1")
            .map_err(map_error)?
            .execute([integer(forget_before)])
            .map_err(map_error)?;
        let inserted = self
            .connection
            .prepare_cached(
                "INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key_id, nonce) DO NOTHING",
            )
            .map_err(map_error)?
            .execute(params![integer(key_id), nonce, integer(now)])
            .map_err(map_error)?;
        Ok(inserted == 1)
    }

    fn delete_code(&mut self, phone: &str, purpose: &str) -> StoreResult<()> {
        self.connection
            .prepare_cached("DELETE FROM one_time_codes WHERE phone = ?1 AND purpose = ?2")
            .map_err(map_error)?
            .execute([phone, purpose])
            .map_err(map_error)?;
        Ok(())
    }

    fn send_sms(&mut self, phone: &str, text: &str, at: u64) -> StoreResult<u64> {
        self.connection
            .prepare_cached("INSERT INTO sms_outbox (phone, text, created_at) VALUES (?1, ?2, ?3)")
            .map_err(map_error)?
            .execute(params![phone, text, integer(at)])
            .map_err(map_error)?;
        unsigned(self.connection.last_insert_rowid(), "message id")
    }

    fn sms_outbox(&mut self, limit: usize) -> StoreResult<Vec<SmsMessage>> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT id, phone, text, created_at FROM sms_outbox ORDER BY id DESC LIMIT ?1",
            )
            .map_err(map_error)?;
        let rows = statement
            .query_map([integer(limit as u64)], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .map_err(map_error)?;
        let mut messages = Vec::new();
        for row in rows {
            let (id, phone, text, created_at) = row.map_err(map_error)?;
            messages.push(SmsMessage {
                id: unsigned(id, "message id")?,
                phone,
                text,
                created_at: unsigned(created_at, "time")?,
            });
        }
        Ok(messages)
    }

    fn create_session(&mut self, digest: &[u8; 32], session: &Session) -> StoreResult<()> {
        self.connection
            .prepare_cached(
                "INSERT INTO sessions (digest, user_id, created_at, expires_at, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(map_error)?
            .execute(params![
                &digest[..],
                integer(session.user_id),
                integer(session.created_at),
                integer(session.expires_at),
                session.revoked,
            ])
            .map_err(map_error)?;
        Ok(())
    }

    fn session(&mut self, digest: &[u8; 32]) -> StoreResult<Option<Session>> {
        let found: Option<(i64, i64, i64, bool)> = self
            .connection
            .prepare_cached(
                "SELECT user_id, created_at, expires_at, revoked FROM sessions WHERE digest = ?1",
            )
            .map_err(map_error)?
            .query_row([&digest[..]], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()
            .map_err(map_error)?;
        found
            .map(|(user_id, created_at, expires_at, revoked)| {
                Ok(Session {
                    user_id: unsigned(user_id, "user id")?,
                    created_at: unsigned(created_at, "time")?,
                    expires_at: unsigned(expires_at, "time")?,
                    revoked,
                })
            })
            .transpose()
    }

    fn revoke_session(&mut self, digest: &[u8; 32]) -> StoreResult<bool> {
        let changed = self
            .connection
            .prepare_cached("UPDATE sessions SET revoked = 1 WHERE digest = ?1 AND revoked = 0")
            .map_err(map_error)?
            .execute([&digest[..]])
            .map_err(map_error)?;
        Ok(changed == 1)
    }
}
