//! The `[maintain]` section of `floe.toml`: how and when each table is
//! compacted, expired and cleaned of orphans. Defaults apply to every table;
//! `[maintain.tables."namespace.table"]` overrides any of them for one
//! table. These structs' doc comments are the section's reference.
//!
//! ```toml
//! [maintain.compact]
//! schedule = "0 */10 * * * *"   # cron with seconds; "off" to not schedule
//! small_file_mb = 32
//! [maintain.expire]
//! older_than = "7d"
//! retain_last = 10
//! [maintain.tables."taxi_cdc.trips"]
//! compact = { schedule = "0 */5 * * * *", target_file_mb = 256 }
//! orphans = { schedule = "off" }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::{CompactPolicy, ExpirePolicy, OrphanPolicy};

/// The shortest orphan age allowed: a writer's files are unreferenced
/// between their writing and its commit, and must not look like orphans.
pub const MIN_ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// The `[maintain]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintainConfig {
    /// Compaction defaults.
    #[serde(default)]
    pub compact: CompactSettings,
    /// Snapshot expiry defaults.
    #[serde(default)]
    pub expire: ExpireSettings,
    /// Orphan cleanup defaults.
    #[serde(default)]
    pub orphans: OrphanSettings,
    /// Per-table overrides, by `namespace.table`.
    #[serde(default)]
    pub tables: BTreeMap<String, TableSettings>,
}

/// One table's overrides: any key of the three default sections.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSettings {
    #[serde(default)]
    pub compact: CompactSettings,
    #[serde(default)]
    pub expire: ExpireSettings,
    #[serde(default)]
    pub orphans: OrphanSettings,
}

/// `[maintain.compact]`: see `floe maintain compact --help`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactSettings {
    /// When `floe jobs schedule` compacts (cron with seconds, or `"off"`).
    /// Default: every 10 minutes, `"0 */10 * * * *"`.
    pub schedule: Option<String>,
    /// A data file under this many MiB is small. Default 32.
    pub small_file_mb: Option<u64>,
    /// Rewrite a partition with at least this many small files. Default 4.
    pub min_small_files: Option<usize>,
    /// ... or whose position deletes remove at least this share of its
    /// rows. Default 0.2.
    pub max_deleted_ratio: Option<f64>,
    /// The size rewritten files aim at, in MiB. Default 128.
    pub target_file_mb: Option<u64>,
}

/// `[maintain.expire]`: see `floe maintain expire --help`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpireSettings {
    /// Default: hourly, `"0 0 * * * *"`.
    pub schedule: Option<String>,
    /// Only snapshots older than this (`7d`, `12h`, `30m`, `90s`).
    /// Default `7d`.
    pub older_than: Option<Age>,
    /// Never the newest this many of the table's history. Default 10.
    pub retain_last: Option<usize>,
}

/// `[maintain.orphans]`: see `floe maintain orphans --help`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrphanSettings {
    /// Default: daily at 03:30 UTC, `"0 30 3 * * *"`.
    pub schedule: Option<String>,
    /// Only files older than this; at least `1h`. Default `3d`.
    pub older_than: Option<Age>,
}

impl CompactSettings {
    /// These settings, with `base`'s where these leave a key out.
    pub fn or(&self, base: &Self) -> Self {
        Self {
            schedule: self.schedule.clone().or_else(|| base.schedule.clone()),
            small_file_mb: self.small_file_mb.or(base.small_file_mb),
            min_small_files: self.min_small_files.or(base.min_small_files),
            max_deleted_ratio: self.max_deleted_ratio.or(base.max_deleted_ratio),
            target_file_mb: self.target_file_mb.or(base.target_file_mb),
        }
    }
}

impl ExpireSettings {
    /// These settings, with `base`'s where these leave a key out.
    pub fn or(&self, base: &Self) -> Self {
        Self {
            schedule: self.schedule.clone().or_else(|| base.schedule.clone()),
            older_than: self.older_than.or(base.older_than),
            retain_last: self.retain_last.or(base.retain_last),
        }
    }
}

impl OrphanSettings {
    /// These settings, with `base`'s where these leave a key out.
    pub fn or(&self, base: &Self) -> Self {
        Self {
            schedule: self.schedule.clone().or_else(|| base.schedule.clone()),
            older_than: self.older_than.or(base.older_than),
        }
    }
}

/// A duration written `7d`, `12h`, `30m` or `90s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Age(pub Duration);

impl std::str::FromStr for Age {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (number, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
        let n: u64 = number
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: expected a number and a unit (d, h, m, s)"))?;
        let seconds = match unit {
            "d" => n * 86_400,
            "h" => n * 3_600,
            "m" => n * 60,
            "s" | "" => n,
            other => return Err(format!("{text:?}: unknown unit {other:?} (d, h, m, s)")),
        };
        Ok(Age(Duration::from_secs(seconds)))
    }
}

impl TryFrom<String> for Age {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        match s {
            _ if s > 0 && s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s > 0 && s.is_multiple_of(3_600) => write!(f, "{}h", s / 3_600),
            _ if s > 0 && s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

/// One of the three maintenance operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Compact,
    Expire,
    Orphans,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Self::Compact, Self::Expire, Self::Orphans];

    pub fn name(self) -> &'static str {
        match self {
            Self::Compact => "compact",
            Self::Expire => "expire",
            Self::Orphans => "orphans",
        }
    }
}

/// One operation's policy for one table, with its schedule (`None`: off).
#[derive(Debug, Clone)]
pub enum TablePolicy {
    Compact(CompactPolicy),
    Expire(ExpirePolicy),
    Orphans(OrphanPolicy),
}

impl MaintainConfig {
    /// Whether the settings make sense: ages and ratios in range, the
    /// orphan age at least [`MIN_ORPHAN_AGE`]. Schedules are checked by
    /// the scheduler, which parses them.
    pub fn validate(&self) -> Result<(), String> {
        let sections = std::iter::once(("[maintain]".to_string(), &self.compact, &self.orphans))
            .chain(self.tables.iter().map(|(name, t)| {
                (
                    format!("[maintain.tables.{name:?}]"),
                    &t.compact,
                    &t.orphans,
                )
            }));
        for (section, compact, orphans) in sections {
            if let Some(r) = compact.max_deleted_ratio {
                if !(0.0..=1.0).contains(&r) {
                    return Err(format!(
                        "{section} compact.max_deleted_ratio = {r}: must be between 0 and 1"
                    ));
                }
            }
            if compact.target_file_mb == Some(0) {
                return Err(format!("{section} compact.target_file_mb must be positive"));
            }
            if let Some(age) = orphans.older_than {
                if age.0 < MIN_ORPHAN_AGE {
                    return Err(format!(
                        "{section} orphans.older_than = {age}: at least 1h, or a file a \
                         writer has written but not yet committed could be deleted"
                    ));
                }
            }
        }
        for name in self.tables.keys() {
            if name.split_once('.').is_none() {
                return Err(format!(
                    "[maintain.tables.{name:?}]: expected `namespace.table`"
                ));
            }
        }
        Ok(())
    }

    /// `operation`'s schedule for `table` (`None` when off).
    pub fn schedule(&self, operation: Operation, table: &str) -> Option<String> {
        let own = self.tables.get(table);
        let (own, default, builtin) = match operation {
            Operation::Compact => (
                own.and_then(|t| t.compact.schedule.clone()),
                self.compact.schedule.clone(),
                "0 */10 * * * *",
            ),
            Operation::Expire => (
                own.and_then(|t| t.expire.schedule.clone()),
                self.expire.schedule.clone(),
                "0 0 * * * *",
            ),
            Operation::Orphans => (
                own.and_then(|t| t.orphans.schedule.clone()),
                self.orphans.schedule.clone(),
                "0 30 3 * * *",
            ),
        };
        let chosen = own.or(default).unwrap_or_else(|| builtin.to_string());
        (chosen.trim() != "off").then_some(chosen)
    }

    /// Every schedule in use by `operation`: the default's and each
    /// table's own.
    pub fn schedules(&self, operation: Operation) -> Vec<String> {
        let mut out: Vec<String> = std::iter::once(self.schedule(operation, ""))
            .chain(
                self.tables
                    .keys()
                    .map(|name| self.schedule(operation, name)),
            )
            .flatten()
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// `operation`'s policy for `table`: its own settings, else the
    /// defaults, else the built-in defaults.
    pub fn policy(&self, operation: Operation, table: &str) -> TablePolicy {
        let own = self.tables.get(table).cloned().unwrap_or_default();
        match operation {
            Operation::Compact => {
                let settings = own.compact.or(&self.compact);
                let base = CompactPolicy::default();
                let mib = |v: u64| v * 1024 * 1024;
                TablePolicy::Compact(CompactPolicy {
                    small_file_bytes: settings.small_file_mb.map_or(base.small_file_bytes, mib),
                    min_small_files: settings.min_small_files.unwrap_or(base.min_small_files),
                    max_deleted_ratio: settings.max_deleted_ratio.unwrap_or(base.max_deleted_ratio),
                    target_file_bytes: settings.target_file_mb.map_or(base.target_file_bytes, mib),
                    max_attempts: base.max_attempts,
                })
            }
            Operation::Expire => {
                let settings = own.expire.or(&self.expire);
                TablePolicy::Expire(ExpirePolicy {
                    older_than: settings
                        .older_than
                        .map_or(Duration::from_secs(7 * 86_400), |a| a.0),
                    retain_last: settings.retain_last.unwrap_or(10),
                })
            }
            Operation::Orphans => {
                let settings = own.orphans.or(&self.orphans);
                TablePolicy::Orphans(OrphanPolicy {
                    older_than: settings
                        .older_than
                        .map_or(Duration::from_secs(3 * 86_400), |a| a.0),
                })
            }
        }
    }

    /// Puts `first`'s keys before every table's and the defaults' (options
    /// given on the command line win over the file).
    pub fn override_with(&mut self, first: &TableSettings) {
        self.compact = first.compact.or(&self.compact);
        self.expire = first.expire.or(&self.expire);
        self.orphans = first.orphans.or(&self.orphans);
        for table in self.tables.values_mut() {
            table.compact = first.compact.or(&table.compact);
            table.expire = first.expire.or(&table.expire);
            table.orphans = first.orphans.or(&table.orphans);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> MaintainConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_table_overrides_the_defaults_key_by_key() {
        let c = config(
            r#"
            [compact]
            small_file_mb = 8
            max_deleted_ratio = 0.5
            [expire]
            retain_last = 3
            [tables."taxi_cdc.trips"]
            compact = { schedule = "0 */5 * * * *", small_file_mb = 64 }
            expire = { older_than = "2d" }
            orphans = { schedule = "off" }
            "#,
        );
        c.validate().unwrap();
        let TablePolicy::Compact(trips) = c.policy(Operation::Compact, "taxi_cdc.trips") else {
            panic!()
        };
        assert_eq!(trips.small_file_bytes, 64 << 20);
        assert_eq!(
            trips.max_deleted_ratio, 0.5,
            "the default where not overridden"
        );
        assert_eq!(trips.min_small_files, 4, "the built-in default");
        let TablePolicy::Compact(other) = c.policy(Operation::Compact, "taxi_cdc.zones") else {
            panic!()
        };
        assert_eq!(other.small_file_bytes, 8 << 20);
        let TablePolicy::Expire(e) = c.policy(Operation::Expire, "taxi_cdc.trips") else {
            panic!()
        };
        assert_eq!((e.older_than.as_secs(), e.retain_last), (2 * 86_400, 3));
        assert_eq!(c.schedule(Operation::Orphans, "taxi_cdc.trips"), None);
        assert_eq!(
            c.schedule(Operation::Orphans, "taxi_cdc.zones").as_deref(),
            Some("0 30 3 * * *")
        );
        assert_eq!(
            c.schedules(Operation::Compact),
            ["0 */10 * * * *", "0 */5 * * * *"]
        );
    }

    #[test]
    fn command_line_options_win_for_every_table() {
        let mut c = config(
            r#"
            [compact]
            small_file_mb = 8
            [tables."taxi_cdc.trips"]
            compact = { small_file_mb = 64, min_small_files = 2 }
            "#,
        );
        let mut flags = TableSettings::default();
        flags.compact.small_file_mb = Some(1);
        c.override_with(&flags);
        for table in ["taxi_cdc.trips", "taxi_cdc.zones"] {
            let TablePolicy::Compact(p) = c.policy(Operation::Compact, table) else {
                panic!()
            };
            assert_eq!(p.small_file_bytes, 1 << 20, "{table}");
        }
        let TablePolicy::Compact(trips) = c.policy(Operation::Compact, "taxi_cdc.trips") else {
            panic!()
        };
        assert_eq!(
            trips.min_small_files, 2,
            "a key the options leave out stays"
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_key() {
        let e = config("[orphans]\nolder_than = \"30m\"")
            .validate()
            .unwrap_err();
        assert!(e.contains("orphans.older_than = 30m"), "{e}");
        let e = config("[tables.\"t\".compact]\nmax_deleted_ratio = 2.0")
            .validate()
            .unwrap_err();
        assert!(e.contains("max_deleted_ratio"), "{e}");
        let e = toml::from_str::<MaintainConfig>("[expire]\nolder_than = \"7w\"").unwrap_err();
        assert!(e.to_string().contains("unknown unit"), "{e}");
    }
}
