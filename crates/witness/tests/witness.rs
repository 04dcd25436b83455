//! The witness crate's one integration-test binary: a log built with `trustlog`'s appender asks
//! witnesses to cosign its checkpoints, directly and over HTTP, honestly and not.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use trustlog::{
    add_signature_line, consistency_proof, leaf_hash, node_hash, sign_note, verify_note_with,
    Checkpoint, Cosigner, Hash, HashReader, NodeId, NoteSigner, NoteVerifier, RightEdge,
    SignatureType,
};
use witness::{
    cosign, AddCheckpointError, AddCheckpointRequest, ClientError, KnownLog, OpenError, Witness,
    WitnessClient,
};

const ORIGIN: &str = "log.tally.example/trust";
const NOW_S: u64 = 1_750_000_000;

// ---------------------------------------------------------------------------------------------
// An in-memory log.

/// A log: its leaves, its right edge (which gives the roots), and its signing key.
#[derive(Clone)]
struct TestLog {
    origin: String,
    signer_seed: [u8; 32],
    leaves: Vec<Hash>,
    edge: RightEdge,
}

impl TestLog {
    fn new(origin: &str, signer_seed: u8) -> TestLog {
        TestLog {
            origin: origin.to_owned(),
            signer_seed: [signer_seed; 32],
            leaves: Vec::new(),
            edge: RightEdge::empty(),
        }
    }

    fn signer(&self) -> NoteSigner {
        NoteSigner::from_seed(&self.origin, &self.signer_seed).unwrap()
    }

    fn known(&self) -> KnownLog {
        KnownLog {
            origin: self.origin.clone(),
            verifier_key_text: self.signer().verifier_key_text(),
        }
    }

    /// Appends `count` leaves whose data is tagged `tag`, so two logs given different tags
    /// diverge from here on.
    fn grow(&mut self, count: usize, tag: &str) -> &mut TestLog {
        let start = self.leaves.len();
        let new: Vec<Hash> = (start..start + count)
            .map(|index| leaf_hash(format!("{tag} {index}").as_bytes()))
            .collect();
        self.edge = self.edge.append(&new).unwrap().edge;
        self.leaves.extend(new);
        assert_eq!(self.edge.root(), reference_root(&self.leaves));
        self
    }

    fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn root(&self) -> Hash {
        self.edge.root()
    }

    fn checkpoint_text(&self) -> String {
        Checkpoint::new(&self.origin, self.size(), self.root(), Vec::new())
            .unwrap()
            .to_body()
    }

    /// The checkpoint note at the current size, signed by the log's key.
    fn note(&self) -> String {
        sign_note(&self.checkpoint_text(), &self.signer()).unwrap()
    }

    fn proof(&self, old_size: u64, new_size: u64) -> Vec<Hash> {
        consistency_proof(old_size, new_size, &LeafReader(&self.leaves)).unwrap()
    }

    /// The add-checkpoint body for the current checkpoint, from `old_size`.
    fn body(&self, old_size: u64) -> String {
        let proof = if old_size == 0 || old_size >= self.size() {
            Vec::new()
        } else {
            self.proof(old_size, self.size())
        };
        AddCheckpointRequest::new(old_size, proof, self.note())
            .unwrap()
            .to_body()
    }
}

/// MTH over a list of leaves, straight from RFC 9162's recursive definition.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => trustlog::empty_root(),
        1 => leaves[0],
        n => {
            // The largest power of two smaller than n.
            let mut split = 1;
            while split * 2 < n {
                split *= 2;
            }
            node_hash(
                &reference_root(&leaves[..split]),
                &reference_root(&leaves[split..]),
            )
        }
    }
}

/// Subtree hashes computed from the leaves: the simplest correct `HashReader`.
struct LeafReader<'a>(&'a [Hash]);

impl HashReader for LeafReader<'_> {
    fn read_hashes(&self, nodes: &[NodeId]) -> trustlog::Result<Vec<Hash>> {
        Ok(nodes
            .iter()
            .map(|node| {
                let start = node.start() as usize;
                let end = node.end() as usize;
                reference_root(&self.0[start..end])
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Witnesses.

fn cosigner(name: &str, seed: u8) -> Cosigner {
    Cosigner::from_seed(name, &[seed; 32]).unwrap()
}

fn open_witness(path: &Path, seed: u8, logs: &[&TestLog]) -> Witness {
    Witness::open(
        path,
        cosigner("witness.tally.example/w1", seed),
        logs.iter().map(|log| log.known()).collect(),
    )
    .unwrap()
}

/// Checks `line` as a cosignature/v1 by `witness_key_text` over `note`; returns its timestamp.
fn cosignature_timestamp(note: &str, line: &str, witness_key_text: &str) -> u64 {
    let verifier = NoteVerifier::parse(witness_key_text).unwrap();
    assert_eq!(verifier.signature_type(), SignatureType::CosignatureV1);
    let cosigned = add_signature_line(note, line).unwrap();
    let verified = verify_note_with(&cosigned, &[verifier]).unwrap();
    assert_eq!(verified.signatures.len(), 1);
    assert_eq!(
        verified.signatures[0].signature_type,
        SignatureType::CosignatureV1
    );
    verified.signatures[0].timestamp_s.unwrap()
}

#[test]
fn the_first_checkpoint_is_cosigned_from_old_size_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5, "honest");
    let witness = open_witness(&dir.path().join("witness.sqlite"), 9, &[&log]);
    assert_eq!(witness.state(ORIGIN).unwrap(), None);

    let line = witness.add_checkpoint(&log.body(0), NOW_S).unwrap();

    assert!(line.starts_with("\u{2014} witness.tally.example/w1 "));
    assert!(line.ends_with('\n'));
    let timestamp = cosignature_timestamp(&log.note(), &line, &witness.verifier_key_text());
    assert_eq!(timestamp, NOW_S);
    assert_eq!(witness.state(ORIGIN).unwrap(), Some((5, log.root())));
}

#[test]
fn a_growing_log_is_cosigned_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    let witness = open_witness(&dir.path().join("witness.sqlite"), 9, &[&log]);
    let mut cosigned_size = 0;
    for (step, grow_by) in [1usize, 1, 2, 4, 9, 0, 300, 255, 1].into_iter().enumerate() {
        log.grow(grow_by, "honest");
        let line = witness
            .add_checkpoint(&log.body(cosigned_size), NOW_S + step as u64)
            .unwrap_or_else(|error| panic!("step {step} to size {}: {error}", log.size()));
        let timestamp = cosignature_timestamp(&log.note(), &line, &witness.verifier_key_text());
        assert_eq!(timestamp, NOW_S + step as u64);
        assert_eq!(
            witness.state(ORIGIN).unwrap(),
            Some((log.size(), log.root()))
        );
        cosigned_size = log.size();
    }
    assert_eq!(cosigned_size, 573);
}

#[test]
fn a_stale_old_size_gets_the_witness_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5, "honest");
    let witness = open_witness(&dir.path().join("witness.sqlite"), 9, &[&log]);
    witness.add_checkpoint(&log.body(0), NOW_S).unwrap();
    log.grow(7, "honest");

    for stale in [0, 3, 6] {
        let refusal = witness.add_checkpoint(&log.body(stale), NOW_S).unwrap_err();
        assert!(
            matches!(refusal, AddCheckpointError::Conflict { size: 5 }),
            "old {stale}: {refusal:?}"
        );
    }
    assert_eq!(witness.state(ORIGIN).unwrap().unwrap().0, 5);
    // Retrying from the size the witness reported succeeds.
    witness.add_checkpoint(&log.body(5), NOW_S).unwrap();
    assert_eq!(witness.state(ORIGIN).unwrap(), Some((12, log.root())));
}

#[test]
fn a_forked_log_is_refused_and_the_state_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut honest = TestLog::new(ORIGIN, 1);
    honest.grow(5, "common");
    let mut fork = honest.clone();
    honest.grow(3, "honest");
    let witness = open_witness(&dir.path().join("witness.sqlite"), 9, &[&honest]);
    witness.add_checkpoint(&honest.body(0), NOW_S).unwrap();
    let cosigned = Some((8, honest.root()));

    // Same origin, same key, other leaves after the common prefix of 5.
    fork.grow(3, "fork");
    assert_ne!(fork.root(), honest.root());
    let refusal = witness.add_checkpoint(&fork.body(8), NOW_S).unwrap_err();
    assert!(
        matches!(refusal, AddCheckpointError::RootMismatch),
        "{refusal:?}"
    );
    assert_eq!(witness.state(ORIGIN).unwrap(), cosigned);

    // Growing the fork past the cosigned size: its proof from 8 starts at its own root.
    fork.grow(20, "fork");
    let refusal = witness.add_checkpoint(&fork.body(8), NOW_S).unwrap_err();
    assert!(
        matches!(refusal, AddCheckpointError::BadProof),
        "{refusal:?}"
    );
    // Nor does the honest log's proof turn the fork's checkpoint into a cosigned one.
    let mut honest_at_28 = honest.clone();
    honest_at_28.grow(20, "honest");
    let mixed = AddCheckpointRequest::new(8, honest_at_28.proof(8, 28), fork.note()).unwrap();
    let refusal = witness.add_checkpoint(&mixed.to_body(), NOW_S).unwrap_err();
    assert!(
        matches!(refusal, AddCheckpointError::BadProof),
        "{refusal:?}"
    );
    assert_eq!(witness.state(ORIGIN).unwrap(), cosigned);

    // The honest log goes on being cosigned.
    witness
        .add_checkpoint(&honest_at_28.body(8), NOW_S)
        .unwrap();
    assert_eq!(
        witness.state(ORIGIN).unwrap(),
        Some((28, honest_at_28.root()))
    );
}

#[test]
fn proofs_that_do_not_fit_the_request_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5, "honest");
    let witness = open_witness(&dir.path().join("witness.sqlite"), 9, &[&log]);
    let first_note = log.note();
    // A proof with old size 0 must be empty.
    let with_proof = AddCheckpointRequest::new(0, vec![[1; 32]], first_note.clone()).unwrap();
    assert!(matches!(
        witness.add_checkpoint(&with_proof.to_body(), NOW_S),
        Err(AddCheckpointError::BadProof)
    ));
    witness.add_checkpoint(&log.body(0), NOW_S).unwrap();
    log.grow(6, "honest");
    let mut proof = log.proof(5, 11);
    let cases = [
        ("empty proof", Vec::new()),
        ("missing hash", proof[1..].to_vec()),
        ("extra hash", [proof.clone(), vec![[0; 32]]].concat()),
        ("changed hash", {
            proof[0][0] ^= 1;
            proof
        }),
    ];
    for (what, proof) in cases {
        let request = AddCheckpointRequest::new(5, proof, log.note()).unwrap();
        let refusal = witness
            .add_checkpoint(&request.to_body(), NOW_S)
            .unwrap_err();
        assert!(
            matches!(refusal, AddCheckpointError::BadProof),
            "{what}: {refusal:?}"
        );
    }
    // Resubmitting the cosigned checkpoint at its own size, with a proof, is refused too.
    let same_size = AddCheckpointRequest::new(5, vec![[1; 32]], first_note).unwrap();
    assert!(matches!(
        witness.add_checkpoint(&same_size.to_body(), NOW_S),
        Err(AddCheckpointError::BadProof)
    ));
    assert_eq!(witness.state(ORIGIN).unwrap().unwrap().0, 5);
}

#[test]
fn the_same_checkpoint_is_cosigned_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5, "honest");
    let witness = open_witness(&dir.path().join("witness.sqlite"), 9, &[&log]);
    witness.add_checkpoint(&log.body(0), NOW_S).unwrap();
    let line = witness.add_checkpoint(&log.body(5), NOW_S + 60).unwrap();
    let timestamp = cosignature_timestamp(&log.note(), &line, &witness.verifier_key_text());
    assert_eq!(timestamp, NOW_S + 60);
    assert_eq!(witness.state(ORIGIN).unwrap(), Some((5, log.root())));
}

#[test]
fn checkpoints_of_unknown_logs_or_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5, "honest");
    let witness = open_witness(&dir.path().join("witness.sqlite"), 9, &[&log]);

    let mut stranger = TestLog::new("other.example/log", 2);
    stranger.grow(5, "honest");
    assert!(matches!(
        witness.add_checkpoint(&stranger.body(0), NOW_S),
        Err(AddCheckpointError::UnknownLog)
    ));

    // Same origin, signed by another key (same name, so only the key ID differs).
    let mut impostor = log.clone();
    impostor.signer_seed = [3; 32];
    assert!(matches!(
        witness.add_checkpoint(&impostor.body(0), NOW_S),
        Err(AddCheckpointError::BadSignature)
    ));

    // Signed by the log's key over other text.
    let note = log.note();
    let other_note = {
        let mut other = log.clone();
        other.grow(1, "honest");
        other.note()
    };
    let signature = &note[note.find("\n\n").unwrap() + 2..];
    let text = &other_note[..other_note.find("\n\n").unwrap() + 2];
    let forged = AddCheckpointRequest::new(0, Vec::new(), format!("{text}{signature}")).unwrap();
    assert!(matches!(
        witness.add_checkpoint(&forged.to_body(), NOW_S),
        Err(AddCheckpointError::BadSignature)
    ));

    // The impostor's signature next to the log's is ignored, as the spec asks.
    let both =
        add_signature_line(&note, &impostor.note()[note.find("\n\n").unwrap() + 2..]).unwrap();
    let request = AddCheckpointRequest::new(0, Vec::new(), both).unwrap();
    witness.add_checkpoint(&request.to_body(), NOW_S).unwrap();
    assert_eq!(witness.state(ORIGIN).unwrap(), Some((5, log.root())));
    assert_eq!(witness.state("other.example/log").unwrap(), None);
}

#[test]
fn malformed_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5, "honest");
    let witness = open_witness(&dir.path().join("witness.sqlite"), 9, &[&log]);
    let note = log.note();
    let bodies = [
        ("empty", String::new()),
        ("note only", note.clone()),
        ("leading zero", format!("old 00\n\n{note}")),
        ("no blank line", format!("old 0\n{note}")),
        ("bad proof line", format!("old 0\nnot-base64\n\n{note}")),
        ("trailing garbage", format!("old 0\n\n{note}garbage")),
        // A signature line that is not base64.
        (
            "bad signature encoding",
            format!(
                "old 0\n\n{}\u{2014} {ORIGIN} AAAA!\n",
                &note[..note.find("\n\n").unwrap() + 2]
            ),
        ),
        (
            "old size above the checkpoint size",
            log.body(0).replacen("old 0", "old 6", 1),
        ),
    ];
    for (what, body) in bodies {
        let refusal = witness.add_checkpoint(&body, NOW_S).unwrap_err();
        let AddCheckpointError::Malformed(message) = &refusal else {
            panic!("{what}: {refusal:?}");
        };
        assert!(!message.is_empty());
    }
    assert_eq!(witness.state(ORIGIN).unwrap(), None);
}

#[test]
fn a_size_zero_checkpoint_must_carry_the_empty_root() {
    let dir = tempfile::tempdir().unwrap();
    let log = TestLog::new(ORIGIN, 1);
    let witness = open_witness(&dir.path().join("witness.sqlite"), 9, &[&log]);
    let bogus_text = Checkpoint::new(ORIGIN, 0, [7; 32], Vec::new())
        .unwrap()
        .to_body();
    let bogus = AddCheckpointRequest::new(
        0,
        Vec::new(),
        sign_note(&bogus_text, &log.signer()).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        witness.add_checkpoint(&bogus.to_body(), NOW_S),
        Err(AddCheckpointError::BadProof)
    ));
    witness.add_checkpoint(&log.body(0), NOW_S).unwrap();
    assert_eq!(
        witness.state(ORIGIN).unwrap(),
        Some((0, trustlog::empty_root()))
    );
}

#[test]
fn the_state_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness.sqlite");
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(40, "honest");
    {
        let witness = open_witness(&path, 9, &[&log]);
        witness.add_checkpoint(&log.body(0), NOW_S).unwrap();
    }
    let witness = open_witness(&path, 9, &[&log]);
    assert_eq!(witness.state(ORIGIN).unwrap(), Some((40, log.root())));
    log.grow(2, "honest");
    assert!(matches!(
        witness.add_checkpoint(&log.body(0), NOW_S),
        Err(AddCheckpointError::Conflict { size: 40 })
    ));
    witness.add_checkpoint(&log.body(40), NOW_S).unwrap();
    drop(witness);
    let witness = open_witness(&path, 9, &[&log]);
    assert_eq!(witness.state(ORIGIN).unwrap(), Some((42, log.root())));
}

/// Two witness handles on one state file (as two processes would have) race to advance the same
/// log from the same state: every round exactly one wins and the other learns the winner's size.
#[test]
fn concurrent_requests_cannot_both_advance_from_one_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness.sqlite");
    let mut log = TestLog::new(ORIGIN, 1);
    let witnesses = [
        Arc::new(open_witness(&path, 9, &[&log])),
        Arc::new(open_witness(&path, 9, &[&log])),
    ];
    let mut cosigned = 0u64;
    for round in 0..20 {
        // Two checkpoints of the same honest log, of different sizes, both from `cosigned`.
        log.grow(1, "honest");
        let smaller = log.body(cosigned);
        let smaller_state = (log.size(), log.root());
        log.grow(1, "honest");
        let larger = log.body(cosigned);
        let larger_state = (log.size(), log.root());
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [smaller, larger]
            .into_iter()
            .zip(witnesses.iter().cloned())
            .map(|(body, witness)| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    witness.add_checkpoint(&body, NOW_S)
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let state = witnesses[0].state(ORIGIN).unwrap().unwrap();
        let winner = outcomes
            .iter()
            .position(Result::is_ok)
            .expect("one request wins");
        assert_eq!(
            state,
            [smaller_state, larger_state][winner],
            "round {round}"
        );
        let loser = &outcomes[1 - winner];
        assert!(
            matches!(loser, Err(AddCheckpointError::Conflict { size }) if *size == state.0),
            "round {round}: {loser:?}"
        );
        cosigned = state.0;
    }
}

#[test]
fn bad_configurations_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness.sqlite");
    let log = TestLog::new(ORIGIN, 1);
    let open = |logs: Vec<KnownLog>| Witness::open(&path, cosigner("w.example", 9), logs);
    assert!(matches!(
        open(vec![log.known(), log.known()]),
        Err(OpenError::DuplicateLog { .. })
    ));
    let bad_key = KnownLog {
        origin: ORIGIN.to_owned(),
        verifier_key_text: "nope".to_owned(),
    };
    assert!(matches!(
        open(vec![bad_key]),
        Err(OpenError::InvalidLogKey { .. })
    ));
    let cosigner_key = KnownLog {
        origin: ORIGIN.to_owned(),
        verifier_key_text: cosigner("w.example", 9).verifier_key_text(),
    };
    assert!(matches!(
        open(vec![cosigner_key]),
        Err(OpenError::LogKeyNotEd25519 { .. })
    ));
    let empty_origin = KnownLog {
        origin: String::new(),
        verifier_key_text: log.signer().verifier_key_text(),
    };
    assert!(matches!(
        open(vec![empty_origin]),
        Err(OpenError::InvalidOrigin { .. })
    ));
    assert!(open(vec![log.known()]).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Over HTTP.

/// A witness served on a random local port under `/witness`, with its own data directory.
struct TestServer {
    address: SocketAddr,
    witness: Arc<Witness>,
    _data: tempfile::TempDir,
    // Dropped last: stops the server.
    _runtime: tokio::runtime::Runtime,
}

impl TestServer {
    fn url(&self) -> String {
        format!("http://{}/witness", self.address)
    }

    fn client(&self) -> WitnessClient {
        WitnessClient::new(
            &self.url(),
            &self.witness.verifier_key_text(),
            Duration::from_secs(10),
        )
        .unwrap()
    }
}

fn serve(router: axum::Router) -> (tokio::runtime::Runtime, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, router).await });
    (runtime, address)
}

fn spawn_witness(name: &str, seed: u8, logs: &[&TestLog]) -> TestServer {
    let data = tempfile::tempdir().unwrap();
    let witness = Arc::new(
        Witness::open(
            &data.path().join("witness.sqlite"),
            cosigner(name, seed),
            logs.iter().map(|log| log.known()).collect(),
        )
        .unwrap(),
    );
    let router = axum::Router::new().nest("/witness", witness::router(Arc::clone(&witness)));
    let (runtime, address) = serve(router);
    TestServer {
        address,
        witness,
        _data: data,
        _runtime: runtime,
    }
}

/// Status, content type and body of a raw POST.
fn post(url: &str, body: impl ureq::AsSendBody) -> (u16, String, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build(),
    );
    let mut response = agent.post(url).send(body).unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.body_mut().read_to_string().unwrap();
    (response.status().as_u16(), content_type, body)
}

#[test]
fn one_log_collects_cosignatures_from_two_witnesses() {
    let mut log = TestLog::new(ORIGIN, 1);
    let witnesses = [
        spawn_witness("witness.one.example", 11, &[&log]),
        spawn_witness("witness.two.example", 12, &[&log]),
    ];
    let clients = witnesses.each_ref().map(TestServer::client);
    let mut known: [Option<u64>; 2] = [None, None];
    for grow_by in [3usize, 10, 0, 100] {
        log.grow(grow_by, "honest");
        let note = log.note();
        let mut cosigned = note.clone();
        for (index, client) in clients.iter().enumerate() {
            let (line, size) = cosign(client, &note, log.size(), known[index], |old, new| {
                Ok(log.proof(old, new))
            })
            .unwrap();
            assert_eq!(size, log.size());
            known[index] = Some(size);
            cosigned = add_signature_line(&cosigned, &line).unwrap();
        }
        // The log's signature and both cosignatures verify on the one note.
        let verifiers = [
            NoteVerifier::parse(&log.signer().verifier_key_text()).unwrap(),
            NoteVerifier::parse(&witnesses[0].witness.verifier_key_text()).unwrap(),
            NoteVerifier::parse(&witnesses[1].witness.verifier_key_text()).unwrap(),
        ];
        let verified = verify_note_with(&cosigned, &verifiers).unwrap();
        let names: Vec<&str> = verified
            .signatures
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            [ORIGIN, "witness.one.example", "witness.two.example"]
        );
        for signature in &verified.signatures[1..] {
            assert!(signature.timestamp_s.unwrap() > 1_600_000_000);
        }
        for witness in &witnesses {
            assert_eq!(
                witness.witness.state(ORIGIN).unwrap(),
                Some((log.size(), log.root()))
            );
        }
    }
}

#[test]
fn a_log_that_forgot_the_witness_size_learns_it_and_retries() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5, "honest");
    let server = spawn_witness("witness.one.example", 11, &[&log]);
    let client = server.client();
    cosign(&client, &log.note(), 5, None, |old, new| {
        Ok(log.proof(old, new))
    })
    .unwrap();
    log.grow(7, "honest");

    // The raw answer: 409, text/x.tlog.size, the size and a newline.
    let (status, content_type, body) =
        post(&format!("{}/add-checkpoint", server.url()), log.body(0));
    assert_eq!(
        (status, content_type.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "5\n")
    );
    // The client reads it as a conflict.
    let request = AddCheckpointRequest::new(0, Vec::new(), log.note()).unwrap();
    assert!(matches!(
        client.add_checkpoint(&request),
        Err(ClientError::Conflict { size: 5 })
    ));

    // After a restart the log knows nothing; `cosign` asks, learns 5, and proves 5 -> 12.
    let asked = std::cell::RefCell::new(Vec::new());
    let (line, size) = cosign(&client, &log.note(), 12, None, |old, new| {
        asked.borrow_mut().push((old, new));
        Ok(log.proof(old, new))
    })
    .unwrap();
    assert_eq!(size, 12);
    assert_eq!(asked.into_inner(), [(5, 12)]);
    cosignature_timestamp(&log.note(), &line, &server.witness.verifier_key_text());
    assert_eq!(
        server.witness.state(ORIGIN).unwrap(),
        Some((12, log.root()))
    );

    // A wrong known size is corrected the same way.
    log.grow(3, "honest");
    let (_, size) = cosign(&client, &log.note(), 15, Some(7), |old, new| {
        Ok(log.proof(old, new))
    })
    .unwrap();
    assert_eq!(size, 15);
}

#[test]
fn the_http_edge_answers_each_refusal_with_its_status() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(8, "common");
    let server = spawn_witness("witness.one.example", 11, &[&log]);
    let url = format!("{}/add-checkpoint", server.url());
    let client = server.client();
    cosign(&client, &log.note(), 8, None, |old, new| {
        Ok(log.proof(old, new))
    })
    .unwrap();

    let (status, content_type, body) = post(&url, log.body(8));
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"));
    cosignature_timestamp(&log.note(), &body, &server.witness.verifier_key_text());

    let mut stranger = TestLog::new("other.example/log", 2);
    stranger.grow(1, "x");
    assert_eq!(post(&url, stranger.body(0)).0, 404);

    let mut impostor = log.clone();
    impostor.signer_seed = [3; 32];
    assert_eq!(post(&url, impostor.body(8)).0, 403);

    let (status, content_type, body) = post(&url, "old 01\n\nnot a checkpoint\n");
    assert_eq!(
        (status, content_type.as_str()),
        (400, "text/plain; charset=utf-8")
    );
    assert!(body.contains("old size"), "{body}");
    assert_eq!(post(&url, &[0xff_u8, 0xfe, b'\n'][..]).0, 400);
    assert_eq!(post(&url, log.body(0).replacen("old 0", "old 9", 1)).0, 400);

    // A fork at the cosigned size: 409 without a size; past it: 422.
    let mut fork = TestLog::new(ORIGIN, 1);
    fork.grow(8, "fork");
    let (status, content_type, _) = post(&url, fork.body(8));
    assert_eq!(
        (status, content_type.as_str()),
        (409, "text/plain; charset=utf-8")
    );
    let request = AddCheckpointRequest::new(8, Vec::new(), fork.note()).unwrap();
    assert!(matches!(
        client.add_checkpoint(&request),
        Err(ClientError::Refused { status: 409, .. })
    ));
    fork.grow(4, "fork");
    assert_eq!(post(&url, fork.body(8)).0, 422);
    let request = AddCheckpointRequest::new(8, fork.proof(8, 12), fork.note()).unwrap();
    assert!(matches!(
        client.add_checkpoint(&request),
        Err(ClientError::BadProof)
    ));

    // Bodies over the limit are refused before they are parsed.
    let huge = "x".repeat(witness::protocol::REQUEST_BODY_BYTES_MAX + 1);
    assert_eq!(post(&url, huge).0, 413);

    assert_eq!(server.witness.state(ORIGIN).unwrap(), Some((8, log.root())));
}

/// A server that answers every add-checkpoint with a fixed body.
fn spawn_fake_witness(status: u16, body: String) -> (tokio::runtime::Runtime, SocketAddr) {
    let handler = move || {
        let body = body.clone();
        async move { (axum::http::StatusCode::from_u16(status).unwrap(), body) }
    };
    serve(axum::Router::new().route("/add-checkpoint", axum::routing::post(handler)))
}

#[test]
fn the_client_refuses_cosignatures_that_do_not_verify() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5, "honest");
    let note = log.note();
    let trusted = cosigner("witness.one.example", 11);
    let other = cosigner("witness.two.example", 12);
    let request = AddCheckpointRequest::new(0, Vec::new(), note.clone()).unwrap();
    let text = log.checkpoint_text();
    let mut grown = log.clone();
    grown.grow(1, "honest");

    let good = trusted.cosign(&text, NOW_S).unwrap();
    let cases = [
        (
            "another witness only",
            other.cosign(&text, NOW_S).unwrap(),
            false,
        ),
        (
            "another checkpoint",
            trusted.cosign(&grown.checkpoint_text(), NOW_S).unwrap(),
            false,
        ),
        ("garbage", "hello\n".to_owned(), false),
        ("no newline", good.trim_end().to_owned(), false),
        ("empty", String::new(), false),
        ("the witness's line", good.clone(), true),
        (
            "ours after another witness's",
            format!("{}{good}", other.cosign(&text, NOW_S).unwrap()),
            true,
        ),
    ];
    for (what, body, accepted) in cases {
        let (_runtime, address) = spawn_fake_witness(200, body);
        let client = WitnessClient::new(
            &format!("http://{address}"),
            &trusted.verifier_key_text(),
            Duration::from_secs(10),
        )
        .unwrap();
        let outcome = client.add_checkpoint(&request);
        if accepted {
            assert_eq!(outcome.unwrap(), good, "{what}");
        } else {
            assert!(
                matches!(outcome, Err(ClientError::BadCosignature)),
                "{what}: {outcome:?}"
            );
        }
    }

    // A 409 without the size content type is a refusal, not a size.
    let (_runtime, address) = spawn_fake_witness(409, "5\n".to_owned());
    let client = WitnessClient::new(
        &format!("http://{address}"),
        &trusted.verifier_key_text(),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(matches!(
        client.add_checkpoint(&request),
        Err(ClientError::Refused { status: 409, ref body }) if body == "5"
    ));
}

#[test]
fn an_unreachable_witness_is_a_transport_error() {
    // Bind and drop a listener so the port is (very likely) closed.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(1, "honest");
    let client = WitnessClient::new(
        &format!("http://{address}"),
        &cosigner("w.example", 9).verifier_key_text(),
        Duration::from_secs(5),
    )
    .unwrap();
    let outcome = cosign(&client, &log.note(), 1, None, |_, _| unreachable!());
    assert!(
        matches!(outcome, Err(ClientError::Transport(_))),
        "{outcome:?}"
    );
}

#[test]
fn a_missing_proof_is_reported_as_such() {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(5, "honest");
    let server = spawn_witness("witness.one.example", 11, &[&log]);
    let client = server.client();
    cosign(&client, &log.note(), 5, None, |_, _| unreachable!()).unwrap();
    log.grow(1, "honest");
    let outcome = cosign(&client, &log.note(), 6, Some(5), |_, _| {
        Err("tiles gone".to_owned())
    });
    assert!(
        matches!(&outcome, Err(ClientError::ProofUnavailable { old_size: 5, new_size: 6, reason }) if reason == "tiles gone"),
        "{outcome:?}"
    );
    assert_eq!(server.witness.state(ORIGIN).unwrap().unwrap().0, 5);
}
