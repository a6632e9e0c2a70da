//! `floe sql`: a read-only SQL shell over the lake.
//!
//! Statements are SQL (DataFusion's dialect) ending in `;`, or meta
//! commands on a line of their own:
//!
//! | command | does |
//! |---|---|
//! | `\dt` | list tables |
//! | `\d namespace.table` | columns, key and partition spec |
//! | `\snapshots namespace.table` | the table's snapshots (for `as_of`) |
//! | `\format table\|csv\|json` | how results are printed |
//! | `\timing` | print each statement's rows and time (on by default) |
//! | `\?` | this list |
//! | `\q` | quit (also Ctrl-D) |
//!
//! Interactively, Ctrl-C cancels the running statement (or the one being
//! typed) and the shell goes on once it has stopped, which takes well
//! under a second; a second Ctrl-C stops waiting for it. Statements that would write (INSERT,
//! CREATE, ...) are refused: the lake is written by `floe ingest` and the
//! jobs only.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use datafusion::execution::context::SQLOptions;
use rustyline::error::ReadlineError;

use crate::error::AnalyticsError;
use crate::format::{write_batches, OutputFormat};
use crate::interrupts::{CancelFlag, CancellableWriter, Interrupts};
use crate::meta;
use crate::session::LakeSession;
use crate::statements::{split_script, StatementSplitter};

pub const HELP: &str = "\
  \\dt                          list tables
  \\d namespace.table           columns, key and partition spec
  \\snapshots namespace.table   snapshots (ids for as_of)
  \\format table|csv|json       result format
  \\timing                      toggle rows-and-time lines
  \\q                           quit (or Ctrl-D)
  SELECT ... FROM as_of('ns.table', <snapshot id> | '<time, UTC>')   time travel";

/// What the shell does after a statement.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    Quit,
}

pub struct Shell {
    session: LakeSession,
    pub format: OutputFormat,
    pub timing: bool,
    /// What an error line passes through before it is printed: the
    /// binary hides secrets with it (an error can quote a URL with a
    /// password in it).
    pub redact: fn(&str) -> String,
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
}

impl Shell {
    pub fn new(session: LakeSession, format: OutputFormat) -> Self {
        Self {
            session,
            format,
            timing: true,
            redact: str::to_string,
        }
    }

    /// Runs one statement (SQL or a meta command), printing its result to
    /// `out` and, with timing on, a summary line to stderr.
    pub async fn execute(
        &mut self,
        statement: &str,
        out: &mut dyn Write,
    ) -> Result<Next, AnalyticsError> {
        let statement = statement.trim();
        if let Some(command) = statement.strip_prefix('\\') {
            return self.meta(command, out).await;
        }
        run_sql(&self.session, statement, self.format, self.timing, out).await?;
        Ok(Next::Continue)
    }

    async fn meta(&mut self, command: &str, out: &mut dyn Write) -> Result<Next, AnalyticsError> {
        let (name, arg) = command
            .split_once(char::is_whitespace)
            .map(|(n, a)| (n, a.trim()))
            .unwrap_or((command, ""));
        let catalog = self.session.lake.catalog().as_ref();
        match name {
            "q" | "quit" => return Ok(Next::Quit),
            "?" | "h" | "help" => writeln!(out, "{HELP}")?,
            "dt" => {
                let tables = meta::list_tables(catalog).await?;
                write_batches(out, &tables.schema(), &[tables], self.format)?
            }
            "d" => {
                let ident = meta::parse_table(arg)?;
                for batch in meta::describe(catalog, &ident).await? {
                    write_batches(out, &batch.schema(), &[batch], self.format)?;
                }
            }
            "snapshots" => {
                let ident = meta::parse_table(arg)?;
                let snapshots = meta::snapshots(catalog, &ident).await?;
                write_batches(out, &snapshots.schema(), &[snapshots], self.format)?;
            }
            "format" => {
                self.format = arg.parse().map_err(AnalyticsError::Usage)?;
            }
            "timing" => {
                self.timing = !self.timing;
                eprintln!("timing {}", if self.timing { "on" } else { "off" });
            }
            other => {
                return Err(AnalyticsError::Usage(format!(
                    "unknown command \\{other} (\\? lists them)"
                )))
            }
        }
        Ok(Next::Continue)
    }

    /// Runs every statement of a script, stopping at the first error.
    pub async fn run_script(
        &mut self,
        text: &str,
        out: &mut dyn Write,
    ) -> Result<(), AnalyticsError> {
        for statement in split_script(text) {
            if self.execute(&statement, out).await? == Next::Quit {
                break;
            }
        }
        Ok(())
    }

    /// The interactive loop: line editing, history in `history`, multi-line
    /// statements; errors are printed and the shell goes on.
    pub async fn interactive(&mut self, history: Option<PathBuf>) -> Result<(), AnalyticsError> {
        let mut editor = rustyline::DefaultEditor::new()
            .map_err(|e| AnalyticsError::Usage(format!("cannot open the terminal: {e}")))?;
        if let Some(h) = &history {
            // a missing history file is simply a first session
            let _ = editor.load_history(h);
        }
        let interrupts = Interrupts::listen()
            .map_err(|e| AnalyticsError::Usage(format!("cannot take over Ctrl-C: {e}")))?;
        eprintln!("floe sql: statements end with ';', \\? for help, \\q or Ctrl-D to quit");
        let mut splitter = StatementSplitter::default();
        let mut typed: Vec<String> = Vec::new();
        loop {
            let prompt = if splitter.pending() {
                "   ...> "
            } else {
                "floe> "
            };
            // rustyline blocks; the runtime is multi-threaded
            let line = tokio::task::block_in_place(|| editor.readline(prompt));
            let line = match line {
                Ok(line) => line,
                Err(ReadlineError::Interrupted) => {
                    splitter = StatementSplitter::default();
                    typed.clear();
                    continue;
                }
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(AnalyticsError::Usage(format!("terminal: {e}"))),
            };
            // history keeps whole statements: the lines typed since one
            // began, once it ends; a meta command is an entry of its own
            let entry = if splitter.is_meta_command(&line) {
                Some(line.trim().to_string())
            } else {
                typed.push(line.clone());
                None
            };
            let statements = splitter.push_line(&line);
            let entry = entry
                .or_else(|| (!splitter.pending()).then(|| std::mem::take(&mut typed).join("\n")));
            if let Some(entry) = entry.filter(|e| !e.trim().is_empty()) {
                let _ = editor.add_history_entry(entry.trim());
                if let Some(h) = &history {
                    let _ = editor.save_history(h);
                }
            }
            for statement in statements {
                match self.interruptible(&statement, &interrupts).await {
                    Ok(Next::Quit) => return Ok(()),
                    Ok(Next::Continue) => {}
                    Err(e) => eprintln!("error: {}", (self.redact)(&e.to_string())),
                }
            }
        }
        Ok(())
    }
}

impl Shell {
    /// Runs one statement so that Ctrl-C stops it: SQL in a task of its
    /// own, aborted at the first Ctrl-C and waited for until it has
    /// stopped (operators yield often, see crate::cooperative), or left to
    /// stop by itself at a second Ctrl-C.
    async fn interruptible(
        &mut self,
        statement: &str,
        interrupts: &Interrupts,
    ) -> Result<Next, AnalyticsError> {
        let seen = interrupts.seen();
        if statement.trim_start().starts_with('\\') {
            let mut out = std::io::stdout();
            return tokio::select! {
                r = self.execute(statement, &mut out) => r,
                _ = interrupts.after(seen) => Err(AnalyticsError::Usage("cancelled".into())),
            };
        }
        let cancel = CancelFlag::default();
        let mut task = {
            let (session, format, timing) = (self.session.clone(), self.format, self.timing);
            let (statement, cancel) = (statement.to_string(), cancel.clone());
            tokio::spawn(async move {
                let mut out = CancellableWriter::new(std::io::stdout(), cancel);
                run_sql(&session, &statement, format, timing, &mut out).await
            })
        };
        tokio::select! {
            done = &mut task => return finished(done),
            _ = interrupts.after(seen) => {}
        }
        cancel.cancel();
        task.abort();
        let seen = interrupts.seen();
        let stopped = tokio::select! {
            _ = &mut task => true,
            _ = tokio::time::sleep(SAY_CANCELLING_AFTER) => false,
        };
        if !stopped {
            eprintln!("cancelling... (Ctrl-C again to stop waiting)");
            tokio::select! {
                _ = &mut task => {}
                _ = interrupts.after(seen) => {
                    return Err(AnalyticsError::Usage(
                        "abandoned: the statement stops at its next chance, in the background"
                            .into(),
                    ));
                }
            }
        }
        Err(AnalyticsError::Usage("cancelled".into()))
    }
}

/// How long a cancelled statement may take to stop before the shell says
/// it is waiting.
const SAY_CANCELLING_AFTER: Duration = Duration::from_millis(500);

/// A statement task's result as the shell reports it.
fn finished(
    done: Result<Result<(), AnalyticsError>, tokio::task::JoinError>,
) -> Result<Next, AnalyticsError> {
    match done {
        Ok(result) => result.map(|()| Next::Continue),
        Err(e) => Err(AnalyticsError::Usage(format!("the statement failed: {e}"))),
    }
}

/// Plans `statement` read-only, runs it, and prints its result to `out`
/// (and, with `timing`, its rows and time to stderr).
async fn run_sql<W: Write + ?Sized>(
    session: &LakeSession,
    statement: &str,
    format: OutputFormat,
    timing: bool,
    out: &mut W,
) -> Result<(), AnalyticsError> {
    let started = Instant::now();
    // new tables and columns become visible at every statement
    session.refresh().await?;
    let frame = session
        .ctx
        .sql_with_options(statement, read_only())
        .await
        .map_err(|e| match e {
            datafusion::error::DataFusionError::Plan(m) if m.contains("not supported") => {
                AnalyticsError::Usage(format!("{m} (the shell is read-only)"))
            }
            other => crate::explain::planning_error(other, &session.ctx),
        })?;
    let schema = frame.schema().as_arrow().clone();
    let batches = frame.collect().await?;
    let mut out: &mut W = out;
    write_batches(&mut out, &schema, &batches, format)?;
    // the timing goes to stderr: let the result reach the terminal first
    out.flush()?;
    if timing {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        eprintln!(
            "({rows} row{}, {:.3} s)",
            if rows == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
