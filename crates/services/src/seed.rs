//! Users in bulk, for benchmarks and tests that need thousands of wallets: each gets a wallet
//! account and a user row, directly, without the one-time codes and Argon2id of registering.
//! Their login password is unusable (the stored hash is not a password hash), so nobody can
//! log in as them.

use ledger::{AccountFlags, Currency, Event, EventResult, NewAccount};
use sequencer::SequencerHandle;
use store::{NewUser, User};

use crate::support::Handles;

/// Creates `count` users with empty wallets, their phones `+` and `first_phone` upwards (e.g.
/// 8619900000000). Blocking: call it off the async threads. Errors come back as text.
pub fn users(
    handles: &Handles,
    ledger: &SequencerHandle,
    currency: Currency,
    first_phone: u64,
    count: usize,
    now_s: u64,
) -> Result<Vec<User>, String> {
    let ids = (0..count)
        .map(|_| crate::ids::new_id(now_s * 1000))
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|error| error.to_string())?;
    for chunk in ids.chunks(ledger::BATCH_EVENTS_MAX) {
        let events = chunk
            .iter()
            .map(|&id| {
                Event::CreateAccount(NewAccount {
                    id: u128::from(id),
                    currency,
                    kind: crate::accounts::KIND_WALLET,
                    // As registered wallets are: no balance snapshot per transfer.
                    flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
                    user_data: 0,
                })
            })
            .collect();
        let results = ledger.execute(events).map_err(|error| error.to_string())?;
        if let Some(result) = results.iter().find(|result| **result != EventResult::Ok) {
            return Err(format!("a wallet was refused: {result:?}"));
        }
    }
    let mut writer = handles.user_writer().map_err(|error| error.to_string())?;
    for (index, &id) in ids.iter().enumerate() {
        let user = NewUser {
            id,
            phone: format!("+{}", first_phone + index as u64),
            password_hash: "unusable".to_owned(),
            wallet_account_id: u128::from(id),
            created_at: now_s,
        };
        if !writer
            .create_user(&user)
            .map_err(|error| error.to_string())?
        {
            return Err(format!("the phone {} is taken", user.phone));
        }
    }
    drop(writer);
    let mut reader = handles.user_store().map_err(|error| error.to_string())?;
    ids.iter()
        .map(|&id| {
            reader
                .user(id)
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("user {id} was not stored"))
        })
        .collect()
}
