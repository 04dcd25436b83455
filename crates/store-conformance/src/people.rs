//! Credentials, users, one-time codes, the SMS outbox, sessions and payment-password tries.

use store::{CredentialRole, NewCredential, NewUser, OneTimeCode, Session, Store};

pub fn credentials_are_created_listed_and_revoked(store: &dyn Store) {
    let mut admin = store.admin().expect("admin");
    let auditor = admin
        .create_credential(&NewCredential {
            role: CredentialRole::Auditor,
            label: "the auditors".into(),
            secret_digest: [1; 32],
            created_at: 1_700_000_000,
        })
        .expect("created");
    let operator = admin
        .create_credential(&NewCredential {
            role: CredentialRole::Operator,
            label: "ops".into(),
            secret_digest: [2; 32],
            created_at: 1_700_000_001,
        })
        .expect("created");
    assert!(operator > auditor, "ids grow");
    let listed = admin.credentials().expect("listed");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].label, "the auditors");
    assert_eq!(listed[0].role, CredentialRole::Auditor);
    assert_eq!(listed[1].secret_digest, [2; 32]);
    assert!(admin
        .revoke_credential(auditor, 1_700_000_100)
        .expect("revoked"));
    assert!(!admin
        .revoke_credential(auditor, 1_700_000_200)
        .expect("once only"));
    assert!(!admin
        .revoke_credential(9_999, 1_700_000_200)
        .expect("no such credential"));
    // Readers authenticate requests with it.
    let mut reader = store.reader().expect("a reader");
    let found = reader
        .credential(auditor)
        .expect("read")
        .expect("the credential");
    assert_eq!(found.revoked_at, Some(1_700_000_100));
    assert_eq!(found.created_at, 1_700_000_000);
    assert_eq!(
        reader
            .credential(operator)
            .expect("read")
            .expect("found")
            .revoked_at,
        None
    );
    assert_eq!(reader.credential(9_999).expect("read"), None);
}

pub fn users_codes_sessions_and_payment_attempts(store: &dyn Store) {
    let mut users = store.users().expect("users");
    let alice = NewUser {
        id: 1_000_001,
        phone: "+8613800138000".into(),
        password_hash: "$argon2id$alice".into(),
        wallet_account_id: 500,
        created_at: 1_700_000_000,
    };
    assert!(users.create_user(&alice).expect("created"));
    // The phone, and the id, are taken.
    let mut again = alice.clone();
    again.id = 1_000_002;
    again.wallet_account_id = 501;
    assert!(!users.create_user(&again).expect("refused, not an error"));
    let mut same_id = alice.clone();
    same_id.phone = "+8613800138001".into();
    same_id.wallet_account_id = 502;
    assert!(!users.create_user(&same_id).expect("refused, not an error"));
    let stored = users.user(alice.id).expect("read").expect("alice");
    assert_eq!(stored.phone, alice.phone);
    assert_eq!(
        (
            stored.tier,
            stored.payment_failures,
            stored.payment_locked_until
        ),
        (0, 0, 0)
    );
    assert_eq!(stored.payment_password_hash, None);
    // Real-name tiers: raised by a bound card or a document check.
    users.set_tier(alice.id, 2).expect("a tier");
    assert_eq!(users.user(alice.id).expect("read").expect("alice").tier, 2);
    users.set_tier(alice.id, 0).expect("a tier");
    assert!(users.set_tier(999_999, 1).is_err(), "no such user");
    assert_eq!(
        users
            .user_by_phone("+8613800138000")
            .expect("read")
            .map(|user| user.id),
        Some(alice.id)
    );
    assert_eq!(users.user_by_phone("+8613800138999").expect("read"), None);

    // The payment password: tries counted before the check, locked at the fifth.
    users
        .set_payment_password(alice.id, "$argon2id$pay")
        .expect("set");
    let (now, lock_until) = (1_700_000_100, 1_700_010_900);
    for expected in 1..=4 {
        assert_eq!(
            users
                .count_payment_attempt(alice.id, now, 5, lock_until)
                .expect("counted"),
            Some((expected, 0))
        );
    }
    assert_eq!(
        users
            .count_payment_attempt(alice.id, now, 5, lock_until)
            .expect("counted"),
        Some((5, lock_until))
    );
    assert_eq!(
        users
            .count_payment_attempt(alice.id, now + 1, 5, lock_until)
            .expect("counted"),
        None,
        "locked"
    );
    // After the lock has run out the count starts again.
    assert_eq!(
        users
            .count_payment_attempt(alice.id, lock_until, 5, lock_until + 100)
            .expect("counted"),
        Some((1, 0))
    );
    users.clear_payment_attempts(alice.id).expect("cleared");
    let stored = users.user(alice.id).expect("read").expect("alice");
    assert_eq!(
        (stored.payment_failures, stored.payment_locked_until),
        (0, 0)
    );
    assert_eq!(
        stored.payment_password_hash.as_deref(),
        Some("$argon2id$pay")
    );
    assert_eq!(
        users
            .count_payment_attempt(4242, now, 5, lock_until)
            .expect("counted"),
        None
    );

    // One-time codes: replaced, counted, deleted.
    let code = OneTimeCode {
        digest: [7; 32],
        created_at: 100,
        expires_at: 400,
        attempts: 0,
    };
    users
        .put_code("+8613800138000", "register", &code)
        .expect("stored");
    users
        .count_code_attempt("+8613800138000", "register")
        .expect("counted");
    users
        .count_code_attempt("+8613800138000", "register")
        .expect("counted");
    assert_eq!(
        users
            .code("+8613800138000", "register")
            .expect("read")
            .map(|code| code.attempts),
        Some(2)
    );
    let newer = OneTimeCode {
        digest: [8; 32],
        created_at: 200,
        expires_at: 500,
        attempts: 0,
    };
    users
        .put_code("+8613800138000", "register", &newer)
        .expect("replaced");
    assert_eq!(
        users.code("+8613800138000", "register").expect("read"),
        Some(newer)
    );
    assert_eq!(users.code("+8613800138000", "login").expect("read"), None);
    users
        .delete_code("+8613800138000", "register")
        .expect("deleted");
    assert_eq!(
        users.code("+8613800138000", "register").expect("read"),
        None
    );

    // The development SMS outbox, newest first.
    let first = users
        .send_sms("+8613800138000", "code 123456", 10)
        .expect("sent");
    let second = users
        .send_sms("+8613800138000", "code 654321", 11)
        .expect("sent");
    assert!(second > first);
    let outbox = users.sms_outbox(10).expect("read");
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].text, "code 654321");
    assert_eq!(users.sms_outbox(1).expect("read").len(), 1);

    // Sessions: stored by digest, revoked once.
    let session = Session {
        user_id: alice.id,
        created_at: 1_000,
        expires_at: 2_000,
        revoked: false,
    };
    users.create_session(&[3; 32], &session).expect("created");
    assert_eq!(
        users.session(&[3; 32]).expect("read"),
        Some(session.clone())
    );
    assert_eq!(users.session(&[4; 32]).expect("read"), None);
    assert!(users.revoke_session(&[3; 32]).expect("revoked"));
    assert!(!users.revoke_session(&[3; 32]).expect("once only"));
    assert!(
        users
            .session(&[3; 32])
            .expect("read")
            .expect("still there")
            .revoked
    );
}

pub fn nonces_are_claimed_once_until_forgotten(store: &dyn Store) {
    let mut users = store.users().expect("a user store");
    assert!(users.claim_nonce(7, "n-1", 1_000, 0).expect("a claim"));
    // The same nonce again, for the same key: a replay, however it is sent.
    let mut other = store.users().expect("a second user store");
    assert!(!other.claim_nonce(7, "n-1", 1_001, 0).expect("a claim"));
    // Another key may use the same nonce.
    assert!(users.claim_nonce(8, "n-1", 1_001, 0).expect("a claim"));
    // Forgotten once its window has passed, and claimable again.
    assert!(users.claim_nonce(7, "n-2", 2_000, 1_500).expect("a claim"));
    assert!(users.claim_nonce(7, "n-1", 2_001, 1_500).expect("a claim"));
    assert!(!users.claim_nonce(7, "n-2", 2_002, 1_500).expect("a claim"));
}
