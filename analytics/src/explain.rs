//! What a statement's error says to the person who typed it: DataFusion's
//! planning errors rewritten as sentences (a syntax error without the
//! parser's debug wrapping; a missing table named as the lake names it,
//! with the tables of that name in other namespaces when the name was
//! unqualified). Other errors pass through as they are.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

use crate::error::AnalyticsError;
use crate::session::LAKE_CATALOG;

/// `error` as the shell shows it, looking up tables in `ctx` for a hint.
pub fn planning_error(
    error: DataFusionError,
    ctx: &datafusion::prelude::SessionContext,
) -> AnalyticsError {
    // DataFusion wraps some in a diagnostic or a context
    match error.find_root() {
        DataFusionError::SQL(parser, _) => AnalyticsError::Usage(format!(
            "syntax error: {}",
            match parser.as_ref() {
                ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
                ParserError::RecursionLimitExceeded => "the statement nests too deeply".into(),
            }
        )),
        DataFusionError::Plan(message) => match missing_table(message) {
            Some(name) => AnalyticsError::Usage(no_such_table(name, ctx)),
            None => error.into(),
        },
        _ => error.into(),
    }
}

/// The name in DataFusion's "table 'lake.ns.name' not found", without the
/// catalog.
fn missing_table(message: &str) -> Option<&str> {
    let name = message
        .strip_prefix("table '")?
        .strip_suffix("' not found")?;
    Some(
        name.strip_prefix(LAKE_CATALOG)
            .and_then(|n| n.strip_prefix('.'))
            .unwrap_or(name),
    )
}

/// "no table ns.name", and where tables of that name are.
fn no_such_table(name: &str, ctx: &datafusion::prelude::SessionContext) -> String {
    let (namespace, table) = name.rsplit_once('.').unwrap_or(("", name));
    let mut elsewhere: Vec<String> = ctx
        .catalog(LAKE_CATALOG)
        .map(|catalog| {
            catalog
                .schema_names()
                .into_iter()
                .filter(|ns| ns != namespace)
                .filter(|ns| {
                    catalog
                        .schema(ns)
                        .is_some_and(|s| s.table_names().iter().any(|t| t == table))
                })
                .map(|ns| format!("{ns}.{table}"))
                .collect()
        })
        .unwrap_or_default();
    elsewhere.sort();
    // DataFusion puts an unqualified name in its default schema, `public`
    let unqualified = namespace == "public";
    match (unqualified, elsewhere.as_slice()) {
        (_, [one]) => format!("no table {name}: did you mean {one}?"),
        (_, []) if unqualified => format!(
            "no table {table}: name tables with their namespace, as `namespace.table` (\\dt lists them)"
        ),
        (_, []) => format!("no table {name} (\\dt lists the tables)"),
        (_, many) => format!("no table {name}: did you mean one of {}?", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn datafusions_missing_table_message_gives_the_lake_name() {
        assert_eq!(
            super::missing_table("table 'lake.public.trips' not found"),
            Some("public.trips")
        );
        assert_eq!(
            super::missing_table("table 'lake.taxi_cdc.nope' not found"),
            Some("taxi_cdc.nope")
        );
        assert_eq!(super::missing_table("No field named nope"), None);
    }
}
