//! `tally log`: the trust log's operator key and receipts anyone can verify offline.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use clap::{Args, Subcommand};
use store::Store;
use store_sqlite::SqliteStore;
use trustlog::NoteSigner;

use crate::DataArgs;

/// The operator's signing key, beside the store, readable by its owner only.
pub const SIGNER_KEY_FILE_NAME: &str = "log-signer.key";
/// This node's witness key (when it witnesses other logs), beside the store, owner-only.
pub const WITNESS_KEY_FILE_NAME: &str = "witness.key";
/// Largest receipt file `verify-receipt` reads.
const RECEIPT_BYTES_MAX: u64 = 64 * 1024;

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print the log's verifier key (`name+keyid+base64(0x01 || public key)`).
    Key(DataArgs),
    /// Print a transfer's receipt: its leaf, inclusion proof and a signed checkpoint (JSON).
    Receipt(ReceiptArgs),
    /// Verify a receipt offline with nothing but the file and the verifier key.
    VerifyReceipt(VerifyReceiptArgs),
    /// Print this node's witness key (`name+keyid+base64(0x04 || public key)`), creating it on
    /// first use: give it to the logs this node witnesses.
    WitnessKey(DataArgs),
}

#[derive(Debug, Args)]
pub struct ReceiptArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The id is a registration's (a deposited document's), not a transfer's.
    #[arg(long)]
    registration: bool,
    /// The transfer's id (or the registration's, with --registration).
    id: u128,
}

#[derive(Debug, Args)]
pub struct VerifyReceiptArgs {
    /// The receipt (JSON, as `tally log receipt` prints it); `-` for standard input.
    file: PathBuf,
    /// The log's verifier key.
    #[arg(long)]
    vkey: String,
}

pub fn run(command: LogCommand) -> anyhow::Result<()> {
    match command {
        LogCommand::Key(data) => {
            let signer = load_signer(&data.directory())?;
            println!("{}", signer.verifier_key_text());
            Ok(())
        }
        LogCommand::Receipt(args) => {
            let store = SqliteStore::open_existing(&args.data.directory())?;
            let receipt = if args.registration {
                let id = u64::try_from(args.id).context("no such registration")?;
                let mut reader = store.reader()?;
                let stored = reader
                    .registration(id)?
                    .with_context(|| format!("no registration {id}"))?;
                let receipt = sequencer::registration_receipt(reader.as_mut(), id)?;
                let mut json = server::registration_receipt_json(id, &receipt);
                json["kind"] = serde_json::Value::from(stored.registration.kind.name());
                json
            } else {
                receipt(&store, args.id)?
            };
            println!("{}", serde_json::to_string_pretty(&receipt)?);
            Ok(())
        }
        LogCommand::WitnessKey(data) => {
            let cosigner = load_or_create_cosigner(&data.directory())?;
            println!("{}", cosigner.verifier_key_text());
            Ok(())
        }
        LogCommand::VerifyReceipt(args) => {
            let text = read_bounded(&args.file)?;
            let summary = verify_receipt(&text, &args.vkey)?;
            println!("{summary}");
            Ok(())
        }
    }
}

/// Loads the operator's key from the data directory.
pub fn load_signer(directory: &Path) -> anyhow::Result<NoteSigner> {
    let path = directory.join(SIGNER_KEY_FILE_NAME);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no log key at {} (it is created when the store is first opened for writing)",
            path.display()
        )
    })?;
    NoteSigner::from_signer_key_text(text.trim())
        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
}

/// Loads the operator's key, creating it (from the operating system's randomness, owner-only
/// permissions) the first time.
pub fn load_or_create_signer(directory: &Path) -> anyhow::Result<NoteSigner> {
    let path = directory.join(SIGNER_KEY_FILE_NAME);
    if path.exists() {
        return load_signer(directory);
    }
    let (seed, name_suffix) = new_key_material()?;
    let name = format!("tally-log-{}", hex(&name_suffix));
    let signer = NoteSigner::from_seed(&name, &seed).map_err(|error| anyhow::anyhow!("{error}"))?;
    write_owner_only(directory, &path, &signer.signer_key_text())?;
    Ok(signer)
}

/// A 32-byte key seed and 4 bytes to tell the key's name apart, from the operating system.
fn new_key_material() -> anyhow::Result<([u8; 32], [u8; 4])> {
    let mut random = [0u8; 36];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut source| source.read_exact(&mut random))
        .context("reading the operating system's randomness")?;
    let seed = random[..32].try_into().expect("32 bytes");
    let suffix = random[32..].try_into().expect("4 bytes");
    Ok((seed, suffix))
}

/// Writes a new key file (one line) readable by its owner only, and makes it durable.
fn write_owner_only(directory: &Path, path: &Path, line: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{line}")?;
    file.sync_all()?;
    Ok(())
}

/// Loads this node's witness key, creating it (from the operating system's randomness,
/// owner-only permissions) the first time. The file holds the key's name and its seed in hex.
pub fn load_or_create_cosigner(directory: &Path) -> anyhow::Result<trustlog::Cosigner> {
    let path = directory.join(WITNESS_KEY_FILE_NAME);
    if !path.exists() {
        let (seed, name_suffix) = new_key_material()?;
        let name = format!("tally-witness-{}", hex(&name_suffix));
        write_owner_only(directory, &path, &format!("{name} {}", hex(&seed)))?;
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (name, seed_hex) = text
        .trim()
        .split_once(' ')
        .with_context(|| format!("{}: expected `<name> <hex seed>`", path.display()))?;
    ensure!(
        seed_hex.len() == 64,
        "{}: the seed is not 32 bytes",
        path.display()
    );
    let mut seed = [0u8; 32];
    for (index, pair) in seed_hex.as_bytes().chunks(2).enumerate() {
        seed[index] = u8::from_str_radix(std::str::from_utf8(pair)?, 16)
            .with_context(|| format!("{}: the seed is not hex", path.display()))?;
    }
    trustlog::Cosigner::from_seed(name, &seed).map_err(|error| anyhow::anyhow!("{error}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn receipt(store: &SqliteStore, transfer_id: u128) -> anyhow::Result<serde_json::Value> {
    let mut reader = store.reader()?;
    let receipt = sequencer::transfer_receipt(reader.as_mut(), transfer_id)?;
    Ok(server::receipt_json(transfer_id, &receipt))
}

fn read_bounded(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(RECEIPT_BYTES_MAX)
            .read_to_string(&mut text)?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("opening {}", path.display()))?
            .take(RECEIPT_BYTES_MAX)
            .read_to_string(&mut text)?;
    }
    Ok(text)
}

/// Verifies a receipt with the verifier key alone; returns a one-line summary.
pub fn verify_receipt(text: &str, verifier_key: &str) -> anyhow::Result<String> {
    let json: serde_json::Value = serde_json::from_str(text).context("the receipt is not JSON")?;
    let field = |name: &str| {
        json.get(name)
            .with_context(|| format!("the receipt has no {name}"))
    };
    let decode = |value: &serde_json::Value, what: &str| -> anyhow::Result<Vec<u8>> {
        let text = value
            .as_str()
            .with_context(|| format!("{what} is not a string"))?;
        BASE64
            .decode(text)
            .with_context(|| format!("{what} is not base64"))
    };
    let leaf = decode(field("leaf")?, "leaf")?;
    let mut inclusion_path = Vec::new();
    for (position, value) in field("inclusion_path")?
        .as_array()
        .context("inclusion_path is not a list")?
        .iter()
        .enumerate()
    {
        let bytes = decode(value, "an inclusion_path hash")?;
        let hash: trustlog::Hash = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("inclusion_path[{position}] is not 32 bytes"))?;
        inclusion_path.push(hash);
    }
    let receipt = trustlog::Receipt {
        leaf: leaf.clone(),
        leaf_index: field("leaf_index")?
            .as_u64()
            .context("leaf_index is not a number")?,
        tree_size: field("tree_size")?
            .as_u64()
            .context("tree_size is not a number")?,
        inclusion_path,
        checkpoint: field("checkpoint")?
            .as_str()
            .context("checkpoint is not text")?
            .to_owned(),
    };
    let checkpoint = trustlog::verify_receipt(&receipt, verifier_key)
        .map_err(|error| anyhow::anyhow!("the receipt does not verify: {error}"))?;
    // The leaf must be the transfer or registration the receipt names.
    if leaf.first() == Some(&store::LOG_LEAF_REGISTRATION) {
        let registration = store::Registration::from_log_leaf(&leaf)
            .context("the leaf is not a valid registration encoding")?;
        let named = field("registration_id")?
            .as_str()
            .and_then(|text| text.parse::<u64>().ok());
        ensure!(
            named == Some(registration.id),
            "the receipt names registration {named:?} but its leaf is registration {}",
            registration.id
        );
        return Ok(format!(
            "receipt verifies: registration {} ({} {}, reference {:?}) is leaf {} of the log {} at size {}",
            registration.id,
            registration.kind.name(),
            registration
                .digest
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>(),
            registration.reference,
            receipt.leaf_index,
            checkpoint.origin(),
            checkpoint.size()
        ));
    }
    if leaf.first() != Some(&ledger::LOG_LEAF_TRANSFER) {
        bail!("the leaf is neither a transfer nor a registration");
    }
    let transfer = ledger::Transfer::decode(&leaf[1..])
        .context("the leaf is not a valid transfer encoding")?;
    let named = field("transfer_id")?
        .as_str()
        .and_then(|text| text.parse::<u128>().ok());
    ensure!(
        named == Some(transfer.id),
        "the receipt names transfer {named:?} but its leaf is transfer {}",
        transfer.id
    );
    Ok(format!(
        "receipt verifies: transfer {} ({} from account {} to account {}) is leaf {} of the log {} at size {}",
        transfer.id,
        transfer.currency.format_amount(transfer.amount),
        transfer.debit_account_id,
        transfer.credit_account_id,
        receipt.leaf_index,
        checkpoint.origin(),
        checkpoint.size()
    ))
}
