//! Splits shell input into statements: SQL ends at a `;` outside quotes
//! and comments; a line starting with `\` is a meta command on its own,
//! also in the middle of a statement being typed (which it leaves as it
//! is, as psql does).

/// Collects lines and hands out each statement once it is complete.
#[derive(Debug, Default)]
pub struct StatementSplitter {
    buffer: String,
    state: Lex,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Lex {
    #[default]
    Code,
    SingleQuote,
    DoubleQuote,
    LineComment,
    BlockComment,
}

impl StatementSplitter {
    /// Whether a statement has begun and not ended.
    pub fn pending(&self) -> bool {
        !self.buffer.trim().is_empty()
    }

    /// Whether `line` is a meta command: it starts with `\` and is not
    /// inside a string or comment of the statement being typed.
    pub fn is_meta_command(&self, line: &str) -> bool {
        self.state == Lex::Code && line.trim_start().starts_with('\\')
    }

    /// Takes one line; returns the statements it completed.
    pub fn push_line(&mut self, line: &str) -> Vec<String> {
        if self.is_meta_command(line) {
            return vec![line.trim().to_string()];
        }
        let mut done = Vec::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            let next = chars.peek().copied();
            match (self.state, c) {
                (Lex::Code, '\'') => self.state = Lex::SingleQuote,
                (Lex::Code, '"') => self.state = Lex::DoubleQuote,
                (Lex::Code, '-') if next == Some('-') => self.state = Lex::LineComment,
                (Lex::Code, '/') if next == Some('*') => self.state = Lex::BlockComment,
                (Lex::Code, ';') => {
                    let statement = self.buffer.trim().to_string();
                    self.buffer.clear();
                    if !statement.is_empty() {
                        done.push(statement);
                    }
                    continue;
                }
                (Lex::SingleQuote, '\'') | (Lex::DoubleQuote, '"') => self.state = Lex::Code,
                (Lex::BlockComment, '*') if next == Some('/') => {
                    self.buffer.push(c);
                    self.buffer.extend(chars.next());
                    self.state = Lex::Code;
                    continue;
                }
                _ => {}
            }
            self.buffer.push(c);
        }
        if self.state == Lex::LineComment {
            self.state = Lex::Code;
        }
        self.buffer.push('\n');
        done
    }

    /// The last statement, if the input ended without its `;`.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        self.state = Lex::Code;
        let rest = rest.trim();
        // only comments left is nothing to run
        let code: String = rest
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        (!code.trim().is_empty()).then(|| rest.to_string())
    }
}

/// Every statement of a script.
pub fn split_script(text: &str) -> Vec<String> {
    let mut splitter = StatementSplitter::default();
    let mut out: Vec<String> = text.lines().flat_map(|l| splitter.push_line(l)).collect();
    out.extend(splitter.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meta_command_inside_a_statement_runs_and_leaves_it_pending() {
        let mut s = StatementSplitter::default();
        assert!(s.push_line("SELECT count(*)").is_empty());
        assert_eq!(s.push_line("\\dt"), vec!["\\dt".to_string()]);
        assert!(s.pending());
        assert_eq!(
            s.push_line("FROM taxi_cdc.trips;"),
            vec!["SELECT count(*)\nFROM taxi_cdc.trips".to_string()]
        );
        // inside a string a backslash line is part of the string
        assert!(s.push_line("SELECT 'a").is_empty());
        assert!(s.push_line("\\dt").is_empty());
        assert_eq!(s.push_line("';"), vec!["SELECT 'a\n\\dt\n'".to_string()]);
    }

    #[test]
    fn semicolons_in_strings_and_comments_do_not_end_a_statement() {
        let script = "SELECT 'a;b', \"odd;name\" FROM t; -- done; really\n\
                      /* a; block\n comment; */ SELECT 2\n;\n\\dt\nSELECT 3";
        assert_eq!(
            split_script(script),
            [
                "SELECT 'a;b', \"odd;name\" FROM t",
                "-- done; really\n/* a; block\n comment; */ SELECT 2",
                "\\dt",
                "SELECT 3",
            ]
        );
    }

    #[test]
    fn a_statement_spans_lines_until_its_semicolon() {
        let mut s = StatementSplitter::default();
        assert!(s.push_line("SELECT count(*)").is_empty());
        assert!(s.pending());
        // a backslash inside a statement is SQL, not a meta command
        assert!(s.push_line("  FROM t WHERE c = '\\d'").is_empty());
        assert_eq!(
            s.push_line("  ; SELECT 1;"),
            ["SELECT count(*)\n  FROM t WHERE c = '\\d'", "SELECT 1"]
        );
        assert!(!s.pending());
        assert_eq!(s.finish(), None);
    }
}
