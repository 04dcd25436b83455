//! The outcome of each event. Business rejections are data, with stable numbers.

/// The result of one event in a batch.
///
/// The numbers are part of the interface (stored, logged, mapped to API error codes): never
/// renumber a variant; append new ones. For one event the checks run in a fixed order (see
/// `state_machine.rs`), so the same request always fails with the same code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum EventResult {
    Ok = 0,
    /// Another event of the same linked chain failed; this one was not applied.
    LinkedEventFailed = 1,
    /// The batch ended in the middle of a linked chain.
    LinkedEventChainOpen = 2,
    IdMustNotBeZero = 3,
    /// Ids, amounts and user data must fit a signed 64-bit integer (see `VALUE_MAX`).
    IdExceedsMaximum = 4,
    FlagsAreMutuallyExclusive = 5,
    UserDataExceedsMaximum = 6,
    DebitAccountIdMustNotBeZero = 7,
    CreditAccountIdMustNotBeZero = 8,
    AccountsMustBeDifferent = 9,
    PendingIdMustBeZero = 10,
    PendingIdMustNotBeZero = 11,
    PendingIdMustBeDifferent = 12,
    TimeoutReservedForPendingTransfer = 13,
    AmountMustNotBeZero = 14,
    AmountExceedsMaximum = 15,
    /// An event with this id was committed before, with other fields: nothing was changed.
    ExistsWithDifferentFields = 16,
    /// This exact event was committed before: a retry, answered without moving money again.
    Exists = 17,
    DebitAccountNotFound = 18,
    CreditAccountNotFound = 19,
    /// The transfer's currency differs from an account's (or the pending transfer's).
    CurrencyMismatch = 20,
    PendingNotFound = 21,
    PendingTransferNotPending = 22,
    PendingTransferHasDifferentAccounts = 23,
    PendingAlreadyPosted = 24,
    PendingAlreadyVoided = 25,
    /// The pending transfer reached its timeout; its hold is (or will be) released.
    PendingExpired = 26,
    AmountExceedsPending = 27,
    VoidAmountMustMatchPending = 28,
    /// A balance would pass `VALUE_MAX`.
    OverflowsDebits = 29,
    OverflowsCredits = 30,
    /// The debit account's debits would exceed its credits.
    ExceedsCredits = 31,
    /// The credit account's credits would exceed its debits.
    ExceedsDebits = 32,
    /// This event was committed before as part of a linked chain, but the chain now submitted
    /// differs (it mixes committed and new events): the whole chain is refused.
    LinkedChainDiffers = 33,
}

impl EventResult {
    /// Every variant, in order of their numbers.
    pub const ALL: [EventResult; 34] = [
        EventResult::Ok,
        EventResult::LinkedEventFailed,
        EventResult::LinkedEventChainOpen,
        EventResult::IdMustNotBeZero,
        EventResult::IdExceedsMaximum,
        EventResult::FlagsAreMutuallyExclusive,
        EventResult::UserDataExceedsMaximum,
        EventResult::DebitAccountIdMustNotBeZero,
        EventResult::CreditAccountIdMustNotBeZero,
        EventResult::AccountsMustBeDifferent,
        EventResult::PendingIdMustBeZero,
        EventResult::PendingIdMustNotBeZero,
        EventResult::PendingIdMustBeDifferent,
        EventResult::TimeoutReservedForPendingTransfer,
        EventResult::AmountMustNotBeZero,
        EventResult::AmountExceedsMaximum,
        EventResult::ExistsWithDifferentFields,
        EventResult::Exists,
        EventResult::DebitAccountNotFound,
        EventResult::CreditAccountNotFound,
        EventResult::CurrencyMismatch,
        EventResult::PendingNotFound,
        EventResult::PendingTransferNotPending,
        EventResult::PendingTransferHasDifferentAccounts,
        EventResult::PendingAlreadyPosted,
        EventResult::PendingAlreadyVoided,
        EventResult::PendingExpired,
        EventResult::AmountExceedsPending,
        EventResult::VoidAmountMustMatchPending,
        EventResult::OverflowsDebits,
        EventResult::OverflowsCredits,
        EventResult::ExceedsCredits,
        EventResult::ExceedsDebits,
        EventResult::LinkedChainDiffers,
    ];

    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// True for a result that leaves the event committed: `ok`, or `exists` for a retry.
    pub fn is_committed(self) -> bool {
        matches!(self, EventResult::Ok | EventResult::Exists)
    }

    /// The stable snake_case name used in APIs and logs.
    pub fn name(self) -> &'static str {
        match self {
            EventResult::Ok => "ok",
            EventResult::LinkedEventFailed => "linked_event_failed",
            EventResult::LinkedEventChainOpen => "linked_event_chain_open",
            EventResult::IdMustNotBeZero => "id_must_not_be_zero",
            EventResult::IdExceedsMaximum => "id_exceeds_maximum",
            EventResult::FlagsAreMutuallyExclusive => "flags_are_mutually_exclusive",
            EventResult::UserDataExceedsMaximum => "user_data_exceeds_maximum",
            EventResult::DebitAccountIdMustNotBeZero => "debit_account_id_must_not_be_zero",
            EventResult::CreditAccountIdMustNotBeZero => "credit_account_id_must_not_be_zero",
            EventResult::AccountsMustBeDifferent => "accounts_must_be_different",
            EventResult::PendingIdMustBeZero => "pending_id_must_be_zero",
            EventResult::PendingIdMustNotBeZero => "pending_id_must_not_be_zero",
            EventResult::PendingIdMustBeDifferent => "pending_id_must_be_different",
            EventResult::TimeoutReservedForPendingTransfer => {
                "timeout_reserved_for_pending_transfer"
            }
            EventResult::AmountMustNotBeZero => "amount_must_not_be_zero",
            EventResult::AmountExceedsMaximum => "amount_exceeds_maximum",
            EventResult::ExistsWithDifferentFields => "exists_with_different_fields",
            EventResult::Exists => "exists",
            EventResult::DebitAccountNotFound => "debit_account_not_found",
            EventResult::CreditAccountNotFound => "credit_account_not_found",
            EventResult::CurrencyMismatch => "currency_mismatch",
            EventResult::PendingNotFound => "pending_not_found",
            EventResult::PendingTransferNotPending => "pending_transfer_not_pending",
            EventResult::PendingTransferHasDifferentAccounts => {
                "pending_transfer_has_different_accounts"
            }
            EventResult::PendingAlreadyPosted => "pending_already_posted",
            EventResult::PendingAlreadyVoided => "pending_already_voided",
            EventResult::PendingExpired => "pending_expired",
            EventResult::AmountExceedsPending => "amount_exceeds_pending",
            EventResult::VoidAmountMustMatchPending => "void_amount_must_match_pending",
            EventResult::OverflowsDebits => "overflows_debits",
            EventResult::OverflowsCredits => "overflows_credits",
            EventResult::ExceedsCredits => "exceeds_credits",
            EventResult::ExceedsDebits => "exceeds_debits",
            EventResult::LinkedChainDiffers => "linked_chain_differs",
        }
    }
}

impl std::fmt::Display for EventResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_and_stable() {
        for (index, result) in EventResult::ALL.iter().enumerate() {
            assert_eq!(result.code() as usize, index);
            assert_eq!(EventResult::from_code(result.code()), Some(*result));
        }
        assert_eq!(EventResult::Exists.code(), 17);
        assert_eq!(EventResult::ExceedsCredits.code(), 31);
        assert_eq!(EventResult::from_code(34), None);
    }
}
