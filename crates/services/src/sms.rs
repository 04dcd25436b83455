//! Text messages to phones: the gateway trait an operator's SMS provider implements, and the
//! development gateway that keeps every message in the store's outbox (read with `tally admin
//! sms`), so the whole flow can be tested without a phone network.

use std::sync::Arc;

use store::{Store, StoreError};

/// Longest message sent.
pub const SMS_TEXT_BYTES_MAX: usize = 480;

/// Why a message could not be sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SmsError {
    #[error("the message is longer than {SMS_TEXT_BYTES_MAX} bytes")]
    TooLong,
    #[error("the SMS gateway failed: {0}")]
    Gateway(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends a text to a phone (E.164). Blocks; the services call it off the async threads.
pub trait SmsGateway: Send + Sync + std::fmt::Debug {
    fn send(&self, phone: &str, text: &str, now_s: u64) -> Result<(), SmsError>;
}

/// The development gateway: messages go to the store's `sms_outbox` table, nowhere else.
#[derive(Debug)]
pub struct OutboxGateway {
    store: Arc<dyn Store>,
}

impl OutboxGateway {
    pub fn new(store: Arc<dyn Store>) -> OutboxGateway {
        OutboxGateway { store }
    }
}

impl SmsGateway for OutboxGateway {
    fn send(&self, phone: &str, text: &str, now_s: u64) -> Result<(), SmsError> {
        if text.len() > SMS_TEXT_BYTES_MAX {
            return Err(SmsError::TooLong);
        }
        self.store.users()?.send_sms(phone, text, now_s)?;
        Ok(())
    }
}
