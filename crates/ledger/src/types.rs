//! Accounts, transfers and their flags: the data the ledger keeps.

use crate::Currency;

/// Largest amount, balance, id or user-data value the ledger accepts: 2^63 − 1.
///
/// The core computes in `u128`, but every stored quantity must stay a native signed 64-bit
/// integer so that auditors can `sum()` it in SQL and look ids up in the form SQL prints them.
pub const VALUE_MAX: u128 = i64::MAX as u128;

/// Nanoseconds in one second, for pending-transfer timeouts.
pub const NANOS_PER_SECOND: u64 = 1_000_000_000;

macro_rules! flags {
    ($(#[$meta:meta])* $name:ident { $($(#[$flag_meta:meta])* $flag:ident = $bit:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name(u16);

        impl $name {
            $($(#[$flag_meta])* pub const $flag: $name = $name($bit);)*
            /// Every bit that has a meaning.
            pub const ALL: $name = $name(0 $(| $bit)*);

            pub const fn empty() -> Self { $name(0) }
            pub const fn bits(self) -> u16 { self.0 }
            /// `None` when a bit without a meaning is set.
            pub const fn from_bits(bits: u16) -> Option<Self> {
                if bits & !Self::ALL.0 == 0 { Some($name(bits)) } else { None }
            }
            pub const fn contains(self, other: Self) -> bool { self.0 & other.0 == other.0 }
            pub const fn union(self, other: Self) -> Self { $name(self.0 | other.0) }
            pub const fn without(self, other: Self) -> Self { $name(self.0 & !other.0) }
            /// Names of the flags that are set, for people and for JSON.
            pub fn names(self) -> Vec<&'static str> {
                let mut names = Vec::new();
                $(if self.contains(Self::$flag) { names.push(stringify!($flag)); })*
                names
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, other: Self) -> Self { self.union(other) }
        }

        impl std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, other: Self) { *self = self.union(other); }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.names().join("|"))
            }
        }
    };
}

flags! {
    /// Flags of an account, fixed when it is created.
    AccountFlags {
        /// This event and the next succeed or fail together.
        LINKED = 1 << 0,
        /// Debits (posted plus pending) may never exceed posted credits: a wallet cannot go negative.
        DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1,
        /// Credits (posted plus pending) may never exceed posted debits.
        CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2,
        /// Keep the account's balances after every transfer that touches it.
        HISTORY = 1 << 3,
    }
}

flags! {
    /// Flags of a transfer.
    TransferFlags {
        /// This event and the next succeed or fail together.
        LINKED = 1 << 0,
        /// Reserve the amount (two-phase): it is posted, voided, or expires at its timeout.
        PENDING = 1 << 1,
        /// Post the pending transfer named by `pending_id`, for its full amount or less.
        POST_PENDING = 1 << 2,
        /// Release the pending transfer named by `pending_id`.
        VOID_PENDING = 1 << 3,
        /// Move at most what the debit account has available.
        BALANCING_DEBIT = 1 << 4,
        /// Move at most what the credit account can still take.
        BALANCING_CREDIT = 1 << 5,
    }
}

/// A request to open an account. Balances start at zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewAccount {
    pub id: u128,
    pub currency: Currency,
    /// What the account is for (wallet, merchant, reserve, fees …), chosen by the services.
    pub kind: u16,
    pub flags: AccountFlags,
    /// A reference to the business object that owns the account.
    pub user_data: u128,
}

/// An account as the ledger keeps it. The balance is derived, never stored twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub id: u128,
    pub currency: Currency,
    pub kind: u16,
    pub flags: AccountFlags,
    pub user_data: u128,
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
    /// When the account was created, in ledger nanoseconds.
    pub timestamp: u64,
}

impl Account {
    /// Credits minus debits, counting holds against the account: what a wallet can spend.
    pub fn available_credit_balance(&self) -> i128 {
        self.credits_posted as i128 - self.debits_posted as i128 - self.debits_pending as i128
    }

    /// Posted credits minus posted debits.
    pub fn posted_credit_balance(&self) -> i128 {
        self.credits_posted as i128 - self.debits_posted as i128
    }

    /// Posted debits minus posted credits (for debit-normal accounts such as the reserve).
    pub fn posted_debit_balance(&self) -> i128 {
        self.debits_posted as i128 - self.credits_posted as i128
    }

    /// True when the balances respect the account's flags and the storage range.
    pub fn respects_flags(&self) -> bool {
        let in_range = [
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
        ]
        .iter()
        .all(|value| *value <= VALUE_MAX);
        let debits_ok = !self
            .flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            || self.debits_posted + self.debits_pending <= self.credits_posted;
        let credits_ok = !self
            .flags
            .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
            || self.credits_posted + self.credits_pending <= self.debits_posted;
        in_range && debits_ok && credits_ok
    }
}

/// A request to move money. The ledger assigns the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTransfer {
    /// Chosen by the client, so that a retry is recognised and never moves money twice.
    pub id: u128,
    /// Zero on `post_pending`/`void_pending` means "the pending transfer's account".
    pub debit_account_id: u128,
    pub credit_account_id: u128,
    /// Minor units. On `post_pending` zero means the full pending amount; on `void_pending`
    /// it must be zero or the pending amount; with a balancing flag it is the most to move.
    pub amount: u128,
    /// The pending transfer that a `post_pending` or `void_pending` settles.
    pub pending_id: u128,
    pub user_data: u128,
    /// Seconds after which a pending transfer expires; zero means never.
    pub timeout_seconds: u32,
    pub kind: u16,
    pub flags: TransferFlags,
    pub currency: Currency,
}

impl NewTransfer {
    /// A plain single-phase transfer; set the other fields on the result as needed.
    pub fn new(
        id: u128,
        debit_account_id: u128,
        credit_account_id: u128,
        amount: u128,
        currency: Currency,
    ) -> Self {
        NewTransfer {
            id,
            debit_account_id,
            credit_account_id,
            amount,
            pending_id: 0,
            user_data: 0,
            timeout_seconds: 0,
            kind: 0,
            flags: TransferFlags::empty(),
            currency,
        }
    }
}

/// A committed transfer. Never updated, never deleted: corrections are new transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub id: u128,
    pub debit_account_id: u128,
    pub credit_account_id: u128,
    /// The amount actually moved (or held, or posted).
    pub amount: u128,
    pub pending_id: u128,
    pub user_data: u128,
    pub timeout_seconds: u32,
    pub kind: u16,
    pub flags: TransferFlags,
    pub currency: Currency,
    /// Assigned by the ledger; strictly increasing across all events.
    pub timestamp: u64,
}

impl Transfer {
    /// When a pending transfer expires, or `None` if it never does (or is not pending).
    pub fn expires_at(&self) -> Option<u64> {
        if !self.flags.contains(TransferFlags::PENDING) || self.timeout_seconds == 0 {
            return None;
        }
        Some(
            self.timestamp
                .saturating_add(u64::from(self.timeout_seconds) * NANOS_PER_SECOND),
        )
    }
}

/// Where a pending transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PendingStatus {
    Pending = 1,
    Posted = 2,
    Voided = 3,
    Expired = 4,
}

impl PendingStatus {
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(PendingStatus::Pending),
            2 => Some(PendingStatus::Posted),
            3 => Some(PendingStatus::Voided),
            4 => Some(PendingStatus::Expired),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PendingStatus::Pending => "pending",
            PendingStatus::Posted => "posted",
            PendingStatus::Voided => "voided",
            PendingStatus::Expired => "expired",
        }
    }
}

/// An account's balances right after a transfer, kept for accounts with the `HISTORY` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountBalance {
    pub account_id: u128,
    pub timestamp: u64,
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
}

/// One request in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    CreateAccount(NewAccount),
    CreateTransfer(NewTransfer),
}

impl Event {
    pub fn is_linked(&self) -> bool {
        match self {
            Event::CreateAccount(account) => account.flags.contains(AccountFlags::LINKED),
            Event::CreateTransfer(transfer) => transfer.flags.contains(TransferFlags::LINKED),
        }
    }
}
