//! Users, one-time codes, the development SMS outbox and sessions: each call one statement,
//! its own transaction, on a pooled connection.

use postgres::types::ToSql;
use postgres::Row;
use store::{
    from_i64, NewUser, OneTimeCode, Session, SmsMessage, StoreError, StoreResult, User, UserStore,
};

use crate::pool::PooledClient;
use crate::{map_error, signed, unsigned};

pub(crate) struct PostgresUsers {
    client: PooledClient,
}

impl PostgresUsers {
    pub(crate) fn new(client: PooledClient) -> Self {
        PostgresUsers { client }
    }

    fn execute(
        &mut self,
        sql: &'static str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<u64> {
        let statement = self.client.statement(sql)?;
        self.client
            .execute(&statement, parameters)
            .map_err(map_error)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        let statement = self.client.statement(sql)?;
        self.client
            .query_opt(&statement, parameters)
            .map_err(map_error)
    }
}

fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> StoreResult<T> {
    row.try_get(index).map_err(map_error)
}

fn digest(bytes: &[u8]) -> StoreResult<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::corrupt("a stored digest is not 32 bytes"))
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn user_from_row(row: &Row) -> StoreResult<User> {
    let tier: i32 = get(row, 4)?;
    Ok(User {
        id: unsigned(get(row, 0)?, "user id")?,
        phone: get(row, 1)?,
        password_hash: get(row, 2)?,
        wallet_account_id: from_i64(get(row, 3)?, "wallet account id")?,
        tier: u8::try_from(tier).map_err(|_| StoreError::corrupt("tier out of range"))?,
        created_at: unsigned(get(row, 5)?, "time")?,
        payment_password_hash: get(row, 6)?,
        payment_failures: count(get(row, 7)?),
        payment_locked_until: unsigned(get(row, 8)?, "time")?,
    })
}

impl UserStore for PostgresUsers {
    fn create_user(&mut self, user: &NewUser) -> StoreResult<bool> {
        let inserted = self.execute(
            "INSERT INTO users (id, phone, password_hash, wallet_account_id, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &signed(user.id),
                &user.phone,
                &user.password_hash,
                &store::to_i64(user.wallet_account_id),
                &signed(user.created_at),
            ],
        )?;
        Ok(inserted == 1)
    }

    fn user(&mut self, id: u64) -> StoreResult<Option<User>> {
        self.query_opt(
            "SELECT id, phone, password_hash, wallet_account_id, tier, created_at,
                payment_password_hash, payment_failures, payment_locked_until
               FROM users WHERE id = $1",
            &[&signed(id)],
        )?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    fn user_by_phone(&mut self, phone: &str) -> StoreResult<Option<User>> {
        self.query_opt(
            "SELECT id, phone, password_hash, wallet_account_id, tier, created_at,
                payment_password_hash, payment_failures, payment_locked_until
               FROM users WHERE phone = $1",
            &[&phone],
        )?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    fn set_payment_password(&mut self, user_id: u64, hash: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET payment_password_hash = $2, payment_failures = 0,
                payment_locked_until = 0 WHERE id = $1",
            &[&signed(user_id), &hash],
        )?;
        Ok(())
    }

    fn count_payment_attempt(
        &mut self,
        user_id: u64,
        now: u64,
        attempts_max: u32,
        lock_until: u64,
    ) -> StoreResult<Option<(u32, u64)>> {
        // One statement: the row lock makes parallel guesses count one after another.
        let attempts_max = i32::try_from(attempts_max).unwrap_or(i32::MAX);
        self.query_opt(
            "UPDATE users SET
                payment_failures = CASE WHEN payment_locked_until > 0 THEN 1
                                        ELSE payment_failures + 1 END,
                payment_locked_until = CASE
                    WHEN (CASE WHEN payment_locked_until > 0 THEN 1
                               ELSE payment_failures + 1 END) >= $3::int4 THEN $4::int8
                    ELSE 0 END
              WHERE id = $1::int8 AND payment_locked_until <= $2::int8
              RETURNING payment_failures, payment_locked_until",
            &[
                &signed(user_id),
                &signed(now),
                &attempts_max,
                &signed(lock_until),
            ],
        )?
        .map(|row| Ok((count(get(&row, 0)?), unsigned(get(&row, 1)?, "time")?)))
        .transpose()
    }

    fn clear_payment_attempts(&mut self, user_id: u64) -> StoreResult<()> {
        self.execute(
            "UPDATE users SET payment_failures = 0, payment_locked_until = 0 WHERE id = $1",
            &[&signed(user_id)],
        )?;
        Ok(())
    }

    fn set_tier(&mut self, user_id: u64, tier: u8) -> StoreResult<()> {
        let changed = self.execute(
            "UPDATE users SET tier = $2 WHERE id = $1",
            &[&signed(user_id), &i32::from(tier)],
        )?;
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
        self.execute(
            "INSERT INTO one_time_codes (phone, purpose, digest, created_at, expires_at, attempts)
             VALUES ($1, $2, $3, $4, $5, 0)
             ON CONFLICT (phone, purpose) DO UPDATE SET digest = excluded.digest,
                created_at = excluded.created_at, expires_at = excluded.expires_at,
                attempts = 0",
            &[
                &phone,
                &purpose,
                &&code.digest[..],
                &signed(code.created_at),
                &signed(code.expires_at),
            ],
        )?;
        Ok(())
    }

    fn code(&mut self, phone: &str, purpose: &str) -> StoreResult<Option<OneTimeCode>> {
        self.query_opt(
            "SELECT digest, created_at, expires_at, attempts FROM one_time_codes
              WHERE phone = $1 AND purpose = $2",
            &[&phone, &purpose],
        )?
        .map(|row| {
            Ok(OneTimeCode {
                digest: digest(get(&row, 0)?)?,
                created_at: unsigned(get(&row, 1)?, "time")?,
                expires_at: unsigned(get(&row, 2)?, "time")?,
                attempts: count(get(&row, 3)?),
            })
        })
        .transpose()
    }

    fn count_code_attempt(&mut self, phone: &str, purpose: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE one_time_codes SET attempts = attempts + 1 WHERE phone = $1 AND purpose = $2",
            &[&phone, &purpose],
        )?;
        Ok(())
    }

    fn claim_nonce(
        &mut self,
        key_id: u64,
        nonce: &str,
        now: u64,
        forget_before: u64,
    ) -> StoreResult<bool> {
        self.execute(
            "DELETE FROM request_nonces WHERE seen_at < $1",
            &[&signed(forget_before)],
        )?;
        let inserted = self.execute(
            "INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES ($1, $2, $3)
             ON CONFLICT (key_id, nonce) DO NOTHING",
            &[&signed(key_id), &nonce, &signed(now)],
        )?;
        Ok(inserted == 1)
    }

    fn delete_code(&mut self, phone: &str, purpose: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM one_time_codes WHERE phone = $1 AND purpose = $2",
            &[&phone, &purpose],
        )?;
        Ok(())
    }

    fn send_sms(&mut self, phone: &str, text: &str, at: u64) -> StoreResult<u64> {
        let row = self
            .query_opt(
                "INSERT INTO sms_outbox (phone, text, created_at) VALUES ($1, $2, $3)
                 RETURNING id",
                &[&phone, &text, &signed(at)],
            )?
            .ok_or_else(|| StoreError::corrupt("the outbox returned no message id"))?;
        unsigned(get(&row, 0)?, "message id")
    }

    fn sms_outbox(&mut self, limit: usize) -> StoreResult<Vec<SmsMessage>> {
        let statement = self.client.statement(
            "SELECT id, phone, text, created_at FROM sms_outbox ORDER BY id DESC LIMIT $1",
        )?;
        self.client
            .query(&statement, &[&signed(limit as u64)])
            .map_err(map_error)?
            .iter()
            .map(|row| {
                Ok(SmsMessage {
                    id: unsigned(get(row, 0)?, "message id")?,
                    phone: get(row, 1)?,
                    text: get(row, 2)?,
                    created_at: unsigned(get(row, 3)?, "time")?,
                })
            })
            .collect()
    }

    fn create_session(&mut self, digest: &[u8; 32], session: &Session) -> StoreResult<()> {
        self.execute(
            "INSERT INTO sessions (digest, user_id, created_at, expires_at, revoked)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &&digest[..],
                &signed(session.user_id),
                &signed(session.created_at),
                &signed(session.expires_at),
                &i32::from(session.revoked),
            ],
        )?;
        Ok(())
    }

    fn session(&mut self, digest: &[u8; 32]) -> StoreResult<Option<Session>> {
        self.query_opt(
            "SELECT user_id, created_at, expires_at, revoked FROM sessions WHERE digest = $1",
            &[&&digest[..]],
        )?
        .map(|row| {
            let revoked: i32 = get(&row, 3)?;
            Ok(Session {
                user_id: unsigned(get(&row, 0)?, "user id")?,
                created_at: unsigned(get(&row, 1)?, "time")?,
                expires_at: unsigned(get(&row, 2)?, "time")?,
                revoked: revoked != 0,
            })
        })
        .transpose()
    }

    fn revoke_session(&mut self, digest: &[u8; 32]) -> StoreResult<bool> {
        let changed = self.execute(
            "UPDATE sessions SET revoked = 1 WHERE digest = $1 AND revoked = 0",
            &[&&digest[..]],
        )?;
        Ok(changed == 1)
    }
}
