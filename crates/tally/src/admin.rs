//! `tally admin`: operator tasks on the store — API credentials for auditors and depositors.

use anyhow::Context;
use clap::{Args, Subcommand};
use store::{CredentialRole, Store};

use crate::backend::{open_existing_store, DatabaseArgs};
use crate::DataArgs;

/// Where the store an admin command works on is: the data directory, or `--database-url`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    database: DatabaseArgs,
}

impl StoreArgs {
    fn open(&self) -> anyhow::Result<Box<dyn Store>> {
        open_existing_store(&self.data.directory(), &self.database)
    }
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// API credentials (`Authorization: Bearer <token>`).
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// The development SMS gateway's outbox: the messages (one-time codes) Tally sent,
    /// newest first.
    Sms(SmsArgs),
}

#[derive(Debug, Args)]
pub struct SmsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Messages to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    limit: u64,
    /// Only messages to this phone number.
    #[arg(long)]
    phone: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Create a credential and print its token (shown once; only its digest is stored).
    Create(CreateArgs),
    /// List credentials (never their secrets).
    List(StoreArgs),
    /// Revoke a credential: its token stops working at once.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// auditor (read-only SQL), depositor (certificate deposit), operator (both).
    #[arg(long)]
    role: String,
    /// Who it is for, e.g. "Audit firm X".
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The credential, as `key_<n>` or `<n>`.
    id: String,
}

pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    let command = match command {
        AdminCommand::Credentials(command) => command,
        AdminCommand::Sms(args) => {
            let store = args.store.open()?;
            let messages = store.users()?.sms_outbox(args.limit as usize)?;
            for message in messages.iter().filter(|message| {
                args.phone
                    .as_ref()
                    .is_none_or(|phone| &message.phone == phone)
            }) {
                println!(
                    "{}  {}  {}",
                    server::rfc3339(message.created_at.saturating_mul(1_000_000_000)),
                    message.phone,
                    message.text
                );
            }
            return Ok(());
        }
    };
    match command {
        CredentialsCommand::Create(args) => {
            let role = CredentialRole::from_name(&args.role).with_context(|| {
                format!(
                    "unknown role {:?}: use auditor, depositor or operator",
                    args.role
                )
            })?;
            let store = args.store.open()?;
            let mut admin = store.admin()?;
            let (id, token) = server::issue_credential(
                admin.as_mut(),
                role,
                &args.label,
                server::unix_seconds(),
            )?;
            eprintln!(
                "created key_{id} ({}); the token is shown only now:",
                role.name()
            );
            println!("{token}");
            Ok(())
        }
        CredentialsCommand::List(store) => {
            let store = store.open()?;
            let credentials = store.admin()?.credentials()?;
            println!("{:<10} {:<10} {:<8} label", "id", "role", "status");
            for credential in credentials {
                let status = if credential.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<10} {:<10} {:<8} {}",
                    format!("key_{}", credential.id),
                    credential.role.name(),
                    status,
                    credential.label
                );
            }
            Ok(())
        }
        CredentialsCommand::Revoke(args) => {
            let number: u64 = args
                .id
                .strip_prefix("key_")
                .unwrap_or(&args.id)
                .parse()
                .with_context(|| format!("{:?} is not a credential id (key_<n>)", args.id))?;
            let store = args.store.open()?;
            anyhow::ensure!(
                store
                    .admin()?
                    .revoke_credential(number, server::unix_seconds())?,
                "no active credential key_{number}"
            );
            println!("revoked key_{number}");
            Ok(())
        }
    }
}
