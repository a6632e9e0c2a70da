//! `floe sql`: the read-only SQL shell over the lake (see `analytics::shell`).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use analytics::{LakeSession, OutputFormat, Shell};
use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
pub struct SqlArgs {
    /// The configuration file; only its [lake] section is read.
    #[arg(long, env = "FLOE_CONFIG", default_value = "floe.toml")]
    config: PathBuf,

    /// Run these statements and exit (repeatable; each may hold several
    /// statements separated by `;`).
    #[arg(short = 'e', long = "execute", value_name = "SQL")]
    execute: Vec<String>,

    /// Run the statements in this file and exit (`-` reads standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,

    /// How results are printed.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,

    /// Do not print the rows-and-time line after each statement.
    #[arg(long)]
    quiet: bool,

    /// The interactive shell's history file.
    #[arg(long, env = "FLOE_SQL_HISTORY")]
    history: Option<PathBuf>,
}

pub fn run(args: SqlArgs) -> Result<()> {
    let lake = crate::config::load_lake(&args.config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let session = LakeSession::open(&lake).await?;
        let mut shell = Shell::new(session, args.format);
        shell.timing = !args.quiet;
        shell.redact = |text| crate::secrets::redact(text).into_owned();
        let mut out = std::io::stdout().lock();
        let scripted = !args.execute.is_empty() || args.file.is_some();
        for sql in &args.execute {
            shell.run_script(sql, &mut out).await?;
        }
        if let Some(file) = &args.file {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                text
            } else {
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            shell.run_script(&text, &mut out).await?;
        }
        if scripted {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() {
            // statements piped in: run them like a file
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            shell.run_script(&text, &mut out).await?;
            return Ok(());
        }
        drop(out);
        let history = args.history.or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".floe_sql_history"))
        });
        shell.interactive(history).await?;
        Ok(())
    })
}
