//! `tally serve --config FILE`: the optional TOML file. Flags win over environment variables
//! (`TALLY_…`), which win over the file, which wins over the defaults.
//!
//! ```toml
//! listen = "0.0.0.0:8080"
//! data = "/var/lib/tally"
//! # database_url = "postgres://tally@db1,db2/tally?target_session_attrs=read-write"
//! audit_interval_seconds = 600
//! # node = 0          # distinct per node when several serve one PostgreSQL database
//! witnesses = ["tally-witness-…+…@http://10.0.0.2:8080/v1/witness"]
//!
//! [users]
//! payment_attempts_max = 5
//! payment_lock_s = 10800
//!
//! [payments]
//! currency = "CNY"
//! order_lifetime_default_s = 7200
//! tiers = [
//!   { single_max = 100000, daily_max = 200000, yearly_max = 1000000 },
//!   { single_max = 1000000, daily_max = 5000000, yearly_max = 20000000 },
//!   { single_max = 5000000, daily_max = 20000000, yearly_max = 200000000 },
//! ]
//!
//! [qr]
//! network_gui = "NET.TALLY"      # the merchant-account template of the codes issued here
//! payment_code_prefix = "28"
//! no_password_max = 20000        # payment-code charges paid without the password
//! confirm_lifetime_s = 300       # how long a larger charge waits for its payer
//! reports_to_flag = 3
//! devices_per_user_max = 5
//!
//! [red_envelopes]
//! packets_max = 100
//! packet_max = 20000             # minor units (200.00 CNY)
//! envelope_max = 2000000
//! lifetime_s = 86400             # then what is left goes back to the sender
//! group_members_max = 500
//!
//! [escrow]
//! ship_within_s = 604800         # not shipped in 7 days: refunded
//! confirm_within_s = 864000      # not confirmed 10 days after shipping: released
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};
use ledger::Currency;
use serde::Deserialize;
use server::ServiceConfig;
use services::payments::TierLimits;

/// Largest configuration file read.
const CONFIG_BYTES_MAX: u64 = 64 * 1024;
/// Most wrong payment passwords in a row that may be configured before paying locks.
const PAYMENT_ATTEMPTS_MAX: u32 = 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub database_url: Option<String>,
    pub audit_interval_seconds: Option<u64>,
    pub node: Option<u64>,
    #[serde(default)]
    pub witnesses: Vec<String>,
    #[serde(default)]
    pub witness_for: Vec<String>,
    #[serde(default)]
    users: UsersSection,
    #[serde(default)]
    payments: PaymentsSection,
    #[serde(default)]
    qr: QrSection,
    #[serde(default)]
    red_envelopes: EnvelopesSection,
    #[serde(default)]
    escrow: EscrowSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopesSection {
    packets_max: Option<usize>,
    packet_max: Option<u64>,
    envelope_max: Option<u64>,
    lifetime_s: Option<u64>,
    group_members_max: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EscrowSection {
    ship_within_s: Option<u64>,
    confirm_within_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QrSection {
    network_gui: Option<String>,
    payment_code_prefix: Option<String>,
    no_password_max: Option<u64>,
    confirm_lifetime_s: Option<u64>,
    reports_to_flag: Option<usize>,
    devices_per_user_max: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersSection {
    code_lifetime_s: Option<u64>,
    code_resend_s: Option<u64>,
    code_attempts_max: Option<u32>,
    session_lifetime_s: Option<u64>,
    payment_attempts_max: Option<u32>,
    payment_lock_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentsSection {
    currency: Option<String>,
    order_lifetime_default_s: Option<u64>,
    order_lifetime_max_s: Option<u64>,
    tiers: Option<Vec<TierSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierSection {
    single_max: u64,
    daily_max: u64,
    yearly_max: u64,
}

impl FileConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let metadata = std::fs::metadata(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        ensure!(
            metadata.len() <= CONFIG_BYTES_MAX,
            "{} is larger than {CONFIG_BYTES_MAX} bytes",
            path.display()
        );
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        let config: FileConfig = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid configuration", path.display()))?;
        config.services()?;
        Ok(config)
    }

    /// The services' configuration: the file's values over the defaults, checked.
    pub fn services(&self) -> anyhow::Result<ServiceConfig> {
        let mut config = ServiceConfig::default();
        let users = &self.users;
        let positive = |name: &str, value: Option<u64>| -> anyhow::Result<Option<u64>> {
            ensure!(value != Some(0), "{name} must be positive");
            Ok(value)
        };
        if let Some(value) = positive("users.code_lifetime_s", users.code_lifetime_s)? {
            config.users.code_lifetime_s = value;
        }
        if let Some(value) = users.code_resend_s {
            config.users.code_resend_s = value;
        }
        if let Some(value) = users.code_attempts_max {
            ensure!(
                (1..=PAYMENT_ATTEMPTS_MAX).contains(&value),
                "users.code_attempts_max: 1 to {PAYMENT_ATTEMPTS_MAX}"
            );
            config.users.code_attempts_max = value;
        }
        if let Some(value) = positive("users.session_lifetime_s", users.session_lifetime_s)? {
            config.users.session_lifetime_s = value;
        }
        if let Some(value) = users.payment_attempts_max {
            ensure!(
                (1..=PAYMENT_ATTEMPTS_MAX).contains(&value),
                "users.payment_attempts_max: 1 to {PAYMENT_ATTEMPTS_MAX}"
            );
            config.users.payment_attempts_max = value;
        }
        if let Some(value) = positive("users.payment_lock_s", users.payment_lock_s)? {
            config.users.payment_lock_s = value;
        }
        let payments = &self.payments;
        if let Some(code) = &payments.currency {
            let currency = Currency::parse(code).map_err(|_| {
                anyhow::anyhow!("payments.currency: {code:?} is not an ISO 4217 code")
            })?;
            config.payments.currency = currency;
            config.users.currency = currency;
        }
        if let Some(value) = positive(
            "payments.order_lifetime_max_s",
            payments.order_lifetime_max_s,
        )? {
            config.payments.order_lifetime_max_s = value;
        }
        if let Some(value) = positive(
            "payments.order_lifetime_default_s",
            payments.order_lifetime_default_s,
        )? {
            config.payments.order_lifetime_default_s = value;
        }
        ensure!(
            config.payments.order_lifetime_default_s <= config.payments.order_lifetime_max_s,
            "payments.order_lifetime_default_s is above payments.order_lifetime_max_s"
        );
        if let Some(tiers) = &payments.tiers {
            ensure!(
                tiers.len() == 3,
                "payments.tiers: three tiers (0, 1, 2), not {}",
                tiers.len()
            );
            for (index, tier) in tiers.iter().enumerate() {
                ensure!(
                    0 < tier.single_max
                        && tier.single_max <= tier.daily_max
                        && tier.daily_max <= tier.yearly_max,
                    "payments.tiers[{index}]: 0 < single_max <= daily_max <= yearly_max"
                );
                config.payments.tiers[index] = TierLimits {
                    single_max: tier.single_max,
                    daily_max: tier.daily_max,
                    yearly_max: tier.yearly_max,
                };
            }
        }
        let qr = &self.qr;
        let settings = &mut config.payments.qr;
        if let Some(gui) = &qr.network_gui {
            ensure!(
                (1..=qr::MPM_GUI_CHARS_MAX).contains(&gui.len())
                    && gui.bytes().all(|byte| byte.is_ascii_graphic()),
                "qr.network_gui: 1 to {} printable ASCII characters, e.g. a reverse domain name",
                qr::MPM_GUI_CHARS_MAX
            );
            settings.network_gui.clone_from(gui);
        }
        if let Some(prefix) = &qr.payment_code_prefix {
            settings.payment_code_prefix = qr::PaymentCodePrefix::new(prefix)
                .map_err(|error| anyhow::anyhow!("qr.payment_code_prefix: {error}"))?;
        }
        if let Some(value) = qr.no_password_max {
            settings.no_password_max = value;
        }
        if let Some(value) = positive("qr.confirm_lifetime_s", qr.confirm_lifetime_s)? {
            settings.confirm_lifetime_s = value;
        }
        if let Some(value) = qr.reports_to_flag {
            ensure!(value >= 1, "qr.reports_to_flag must be positive");
            settings.reports_to_flag = value;
        }
        if let Some(value) = qr.devices_per_user_max {
            ensure!(value >= 1, "qr.devices_per_user_max must be positive");
            settings.devices_per_user_max = value;
        }
        let envelopes = &self.red_envelopes;
        let limits = &mut config.payments.envelopes;
        if let Some(value) = envelopes.packets_max {
            ensure!(
                (1..=store::ENVELOPE_PACKETS_MAX).contains(&value),
                "red_envelopes.packets_max: 1 to {}",
                store::ENVELOPE_PACKETS_MAX
            );
            limits.packets_max = value;
        }
        if let Some(value) = positive("red_envelopes.packet_max", envelopes.packet_max)? {
            limits.packet_max = value;
        }
        if let Some(value) = positive("red_envelopes.envelope_max", envelopes.envelope_max)? {
            limits.envelope_max = value;
        }
        if let Some(value) = positive("red_envelopes.lifetime_s", envelopes.lifetime_s)? {
            limits.lifetime_s = value;
        }
        if let Some(value) = envelopes.group_members_max {
            ensure!(value >= 2, "red_envelopes.group_members_max: at least 2");
            limits.group_members_max = value;
        }
        let escrow = &self.escrow;
        if let Some(value) = positive("escrow.ship_within_s", escrow.ship_within_s)? {
            config.payments.escrow.ship_within_s = value;
        }
        if let Some(value) = positive("escrow.confirm_within_s", escrow.confirm_within_s)? {
            config.payments.escrow.confirm_within_s = value;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<ServiceConfig> {
        let config: FileConfig = toml::from_str(text)?;
        config.services()
    }

    #[test]
    fn a_file_overrides_the_defaults_and_bad_values_are_refused() {
        let config = parse(
            "[users]\npayment_attempts_max = 3\n[payments]\ncurrency = \"BRL\"\ntiers = [\n{ single_max = 1, daily_max = 2, yearly_max = 3 },\n{ single_max = 10, daily_max = 20, yearly_max = 30 },\n{ single_max = 100, daily_max = 200, yearly_max = 300 }]\n",
        )
        .unwrap();
        assert_eq!(config.users.payment_attempts_max, 3);
        assert_eq!(config.payments.currency.as_str(), "BRL");
        assert_eq!(config.users.currency.as_str(), "BRL");
        assert_eq!(config.payments.tiers[2].yearly_max, 300);
        assert!(parse("[users]\npayment_attempts_max = 0\n").is_err());
        assert!(parse("[payments]\ncurrency = \"XXXX\"\n").is_err());
        assert!(
            parse("[payments]\ntiers = [{ single_max = 5, daily_max = 2, yearly_max = 3 }]\n")
                .is_err()
        );
        assert!(parse("listen = \"not an address\"\n").is_err());
        assert!(
            parse("unknown_key = 1\n").is_err(),
            "unknown keys are refused"
        );
        let qr = parse("[qr]\nnetwork_gui = \"COM.EXAMPLE.PAY\"\npayment_code_prefix = \"25\"\nno_password_max = 0\n")
            .unwrap()
            .payments
            .qr;
        assert_eq!(
            (
                qr.network_gui.as_str(),
                qr.payment_code_prefix.as_str(),
                qr.no_password_max
            ),
            ("COM.EXAMPLE.PAY", "25", 0)
        );
        assert!(parse("[qr]\npayment_code_prefix = \"2\"\n").is_err());
        assert!(parse("[qr]\nnetwork_gui = \"has space\"\n").is_err());
        let config = parse(
            "[red_envelopes]\npacket_max = 5000\nlifetime_s = 3600\n[escrow]\nconfirm_within_s = 60\n",
        )
        .unwrap();
        assert_eq!(
            (
                config.payments.envelopes.packet_max,
                config.payments.envelopes.lifetime_s,
                config.payments.escrow.confirm_within_s
            ),
            (5_000, 3_600, 60)
        );
        assert!(parse("[red_envelopes]\npackets_max = 0\n").is_err());
        assert!(parse("[escrow]\nship_within_s = 0\n").is_err());
        assert!(parse("").is_ok());
    }
}
