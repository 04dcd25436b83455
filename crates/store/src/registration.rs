//! Registrations: things that are not money but must be provable — a deposited document's
//! hash, a merchant's QR code, an e-invoice, a device certificate. Each one is a leaf of the
//! trust log, committed by the sequencer in the same transaction as the batch it rides in.
//!
//! The leaf never carries the thing itself, only its SHA-256 digest (a salted commitment when
//! the thing is personal), so the log, which cannot forget, holds no personal data.
//!
//! Leaf encoding, version 1, all integers big-endian (69 + n bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | leaf type (2: registration) |
//! | 1 | 1 | version (1) |
//! | 2 | 8 | registration id |
//! | 10 | 2 | kind (1 document, 2 merchant QR code, 3 e-invoice, 4 device certificate) |
//! | 12 | 32 | subject digest (SHA-256 of the registered thing) |
//! | 44 | 16 | registrant (who registered it: an API credential, later a merchant) |
//! | 60 | 8 | timestamp (ledger nanoseconds) |
//! | 68 | 1 | reference length n (0 to 64) |
//! | 69 | n | reference (printable ASCII, the registrant's own reference) |
//!
//! The layout never changes for a version; a new layout takes a new version byte.

/// The first byte of a registration's trust-log leaf (a transfer's is
/// [`ledger::LOG_LEAF_TRANSFER`]).
pub const LOG_LEAF_REGISTRATION: u8 = 2;
pub const REGISTRATION_ENCODING_VERSION: u8 = 1;
/// The longest reference, in bytes.
pub const REGISTRATION_REFERENCE_BYTES_MAX: usize = 64;
/// The longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;
/// Registrations one request may carry.
pub const REQUEST_REGISTRATIONS_MAX: usize = 100;
const LEAF_FIXED_BYTES: usize = 69;
/// The largest registration leaf.
pub const REGISTRATION_LEAF_BYTES_MAX: usize = LEAF_FIXED_BYTES + REGISTRATION_REFERENCE_BYTES_MAX;

const _: () = assert!(REGISTRATION_REFERENCE_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(LOG_LEAF_REGISTRATION != ledger::LOG_LEAF_TRANSFER);

/// What a registration records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrationKind {
    /// A deposited document's hash (certificate deposit, notarisation).
    Document,
    /// A merchant-presented QR code's payload.
    MerchantCode,
    /// An e-invoice.
    Invoice,
    /// A device certificate.
    DeviceCertificate,
}

impl RegistrationKind {
    pub const ALL: [RegistrationKind; 4] = [
        RegistrationKind::Document,
        RegistrationKind::MerchantCode,
        RegistrationKind::Invoice,
        RegistrationKind::DeviceCertificate,
    ];

    /// The stable code in leaves and in the store.
    pub fn code(self) -> u16 {
        match self {
            RegistrationKind::Document => 1,
            RegistrationKind::MerchantCode => 2,
            RegistrationKind::Invoice => 3,
            RegistrationKind::DeviceCertificate => 4,
        }
    }

    pub fn from_code(code: u16) -> Option<RegistrationKind> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// The name in the API and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            RegistrationKind::Document => "document",
            RegistrationKind::MerchantCode => "merchant_code",
            RegistrationKind::Invoice => "invoice",
            RegistrationKind::DeviceCertificate => "device_certificate",
        }
    }

    pub fn from_name(name: &str) -> Option<RegistrationKind> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// Why a registration request was refused before it reached the sequencer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationInputError {
    #[error("the reference must be at most {REGISTRATION_REFERENCE_BYTES_MAX} printable ASCII characters")]
    Reference,
    #[error(
        "the idempotency key must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters"
    )]
    IdempotencyKey,
}

/// A registration asked for. `(registrant, idempotency_key)` identifies it: asking again with
/// the same key returns the first registration and appends nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistration {
    kind: RegistrationKind,
    digest: [u8; 32],
    registrant: u128,
    reference: String,
    idempotency_key: String,
}

fn printable_ascii(text: &str) -> bool {
    text.bytes().all(|byte| (0x20..0x7f).contains(&byte))
}

impl NewRegistration {
    pub fn new(
        kind: RegistrationKind,
        digest: [u8; 32],
        registrant: u128,
        reference: &str,
        idempotency_key: &str,
    ) -> Result<NewRegistration, RegistrationInputError> {
        if reference.len() > REGISTRATION_REFERENCE_BYTES_MAX || !printable_ascii(reference) {
            return Err(RegistrationInputError::Reference);
        }
        if idempotency_key.is_empty()
            || idempotency_key.len() > IDEMPOTENCY_KEY_BYTES_MAX
            || !printable_ascii(idempotency_key)
        {
            return Err(RegistrationInputError::IdempotencyKey);
        }
        Ok(NewRegistration {
            kind,
            digest,
            registrant,
            reference: reference.to_owned(),
            idempotency_key: idempotency_key.to_owned(),
        })
    }

    pub fn kind(&self) -> RegistrationKind {
        self.kind
    }

    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    pub fn registrant(&self) -> u128 {
        self.registrant
    }

    pub fn reference(&self) -> &str {
        &self.reference
    }

    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// The registration this request asks for, once the sequencer gives it an id and a time.
    pub fn to_registration(&self, id: u64, timestamp: u64) -> Registration {
        Registration {
            id,
            kind: self.kind,
            digest: self.digest,
            registrant: self.registrant,
            reference: self.reference.clone(),
            timestamp,
        }
    }

    /// Whether `stored` (found under the same key) records the same thing.
    pub fn same_as(&self, stored: &Registration) -> bool {
        self.kind == stored.kind
            && self.digest == stored.digest
            && self.registrant == stored.registrant
            && self.reference == stored.reference
    }
}

/// A committed registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// 1, 2, 3 … in commit order.
    pub id: u64,
    pub kind: RegistrationKind,
    pub digest: [u8; 32],
    pub registrant: u128,
    pub reference: String,
    /// Ledger nanoseconds.
    pub timestamp: u64,
}

impl Registration {
    /// The registration's trust-log leaf (see the module documentation).
    pub fn log_leaf(&self) -> Vec<u8> {
        assert!(self.reference.len() <= REGISTRATION_REFERENCE_BYTES_MAX);
        let mut leaf = Vec::with_capacity(LEAF_FIXED_BYTES + self.reference.len());
        leaf.push(LOG_LEAF_REGISTRATION);
        leaf.push(REGISTRATION_ENCODING_VERSION);
        leaf.extend_from_slice(&self.id.to_be_bytes());
        leaf.extend_from_slice(&self.kind.code().to_be_bytes());
        leaf.extend_from_slice(&self.digest);
        leaf.extend_from_slice(&self.registrant.to_be_bytes());
        leaf.extend_from_slice(&self.timestamp.to_be_bytes());
        leaf.push(u8::try_from(self.reference.len()).expect("bounded above"));
        leaf.extend_from_slice(self.reference.as_bytes());
        assert_eq!(leaf.len(), LEAF_FIXED_BYTES + self.reference.len());
        leaf
    }

    /// The inverse of [`Registration::log_leaf`]; `None` for anything malformed.
    pub fn from_log_leaf(leaf: &[u8]) -> Option<Registration> {
        if leaf.len() < LEAF_FIXED_BYTES
            || leaf[0] != LOG_LEAF_REGISTRATION
            || leaf[1] != REGISTRATION_ENCODING_VERSION
        {
            return None;
        }
        let reference_length = usize::from(leaf[68]);
        if reference_length > REGISTRATION_REFERENCE_BYTES_MAX
            || leaf.len() != LEAF_FIXED_BYTES + reference_length
        {
            return None;
        }
        let reference = std::str::from_utf8(&leaf[LEAF_FIXED_BYTES..]).ok()?;
        if !printable_ascii(reference) {
            return None;
        }
        Some(Registration {
            id: u64::from_be_bytes(leaf[2..10].try_into().ok()?),
            kind: RegistrationKind::from_code(u16::from_be_bytes(leaf[10..12].try_into().ok()?))?,
            digest: leaf[12..44].try_into().ok()?,
            registrant: u128::from_be_bytes(leaf[44..60].try_into().ok()?),
            timestamp: u64::from_be_bytes(leaf[60..68].try_into().ok()?),
            reference: reference.to_owned(),
        })
    }
}

/// A registration as stored: with its leaf number and the key it was asked for with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegistration {
    pub registration: Registration,
    pub leaf_index: u64,
    pub idempotency_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(reference: &str) -> Registration {
        NewRegistration::new(
            RegistrationKind::Invoice,
            [7; 32],
            (1 << 100) + 5,
            reference,
            "key-1",
        )
        .unwrap()
        .to_registration(42, 1_700_000_000_000_000_000)
    }

    #[test]
    fn leaf_round_trips_and_has_the_documented_layout() {
        for reference in ["", "INV-2026-0001", &"x".repeat(64)] {
            let registration = sample(reference);
            let leaf = registration.log_leaf();
            assert_eq!(leaf.len(), 69 + reference.len());
            assert_eq!(&leaf[..2], &[2, 1]);
            assert_eq!(&leaf[2..10], &42u64.to_be_bytes());
            assert_eq!(&leaf[10..12], &[0, 3]);
            assert_eq!(&leaf[12..44], &[7; 32]);
            assert_eq!(usize::from(leaf[68]), reference.len());
            assert_eq!(Registration::from_log_leaf(&leaf), Some(registration));
        }
    }

    #[test]
    fn malformed_leaves_are_refused() {
        let leaf = sample("ref").log_leaf();
        assert_eq!(Registration::from_log_leaf(&leaf[..leaf.len() - 1]), None);
        let mut longer = leaf.clone();
        longer.push(b'x');
        assert_eq!(Registration::from_log_leaf(&longer), None);
        let mut transfer_type = leaf.clone();
        transfer_type[0] = ledger::LOG_LEAF_TRANSFER;
        assert_eq!(Registration::from_log_leaf(&transfer_type), None);
        let mut unknown_kind = leaf.clone();
        unknown_kind[11] = 9;
        assert_eq!(Registration::from_log_leaf(&unknown_kind), None);
        let mut control_character = leaf;
        control_character[69] = b'\n';
        assert_eq!(Registration::from_log_leaf(&control_character), None);
    }

    #[test]
    fn inputs_are_bounded() {
        let new = |reference: &str, key: &str| {
            NewRegistration::new(RegistrationKind::Document, [0; 32], 1, reference, key)
        };
        assert!(new(&"r".repeat(64), "k").is_ok());
        assert_eq!(
            new(&"r".repeat(65), "k"),
            Err(RegistrationInputError::Reference)
        );
        assert_eq!(
            new("tab\there", "k"),
            Err(RegistrationInputError::Reference)
        );
        assert_eq!(new("é", "k"), Err(RegistrationInputError::Reference));
        assert_eq!(new("r", ""), Err(RegistrationInputError::IdempotencyKey));
        assert_eq!(
            new("r", &"k".repeat(256)),
            Err(RegistrationInputError::IdempotencyKey)
        );
    }

    #[test]
    fn kinds_have_stable_codes_and_names() {
        for kind in RegistrationKind::ALL {
            assert_eq!(RegistrationKind::from_code(kind.code()), Some(kind));
            assert_eq!(RegistrationKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(RegistrationKind::Document.code(), 1);
        assert_eq!(RegistrationKind::DeviceCertificate.code(), 4);
        assert_eq!(RegistrationKind::from_name("passport"), None);
    }
}
