//! Where a store's rows live: the SQL dialect and the checked names of its tables.

use crate::error::OpenError;

/// The SQL a backend speaks, as far as kern's statements differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A checked SQL identifier. Names come from configuration and end up in SQL text (they cannot
/// be bound as parameters), so only plain identifiers are let through, and always quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident(String);

impl Ident {
    /// The longest accepted name. Postgres cuts identifiers at 63 bytes; index names add up to
    /// 12 bytes to the table name, so 40 keeps every derived name whole and distinct.
    const MAX_LEN: usize = 40;

    pub(crate) fn new(name: &str) -> Result<Self, OpenError> {
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.len() <= Self::MAX_LEN;
        if valid { Ok(Ident(name.to_owned())) } else { Err(OpenError::InvalidName(name.to_owned())) }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The name in double quotes, so keywords and upper case are taken literally.
    pub(crate) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

/// The configurable table names of a store, as given to a builder; checked by [`Layout::new`].
#[derive(Debug, Clone)]
pub(crate) struct TableNames {
    pub(crate) approvals: String,
    pub(crate) runs: String,
    pub(crate) sessions: String,
}

impl Default for TableNames {
    fn default() -> Self {
        TableNames { approvals: "kern_approvals".into(), runs: "kern_runs".into(), sessions: "kern_sessions".into() }
    }
}

/// The checked tables of one store, in one dialect.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) dialect: Dialect,
    /// The Postgres schema the tables live in; SQLite has none.
    pub(crate) schema: Option<Ident>,
    pub(crate) approvals: Ident,
    pub(crate) runs: Ident,
    pub(crate) sessions: Ident,
}

/// The table holding one schema-version row per set of kern tables in the database.
const VERSION_TABLE: &str = "kern_schema_version";

impl Layout {
    pub(crate) fn new(dialect: Dialect, schema: Option<&str>, names: &TableNames) -> Result<Self, OpenError> {
        Ok(Layout {
            dialect,
            schema: schema.map(Ident::new).transpose()?,
            approvals: Ident::new(&names.approvals)?,
            runs: Ident::new(&names.runs)?,
            sessions: Ident::new(&names.sessions)?,
        })
    }

    /// A table's name as it goes into SQL: quoted, and qualified by the schema on Postgres.
    pub(crate) fn table(&self, table: &Ident) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", schema.quoted(), table.quoted()),
            None => table.quoted(),
        }
    }

    pub(crate) fn version_table(&self) -> String {
        self.table(&Ident(VERSION_TABLE.to_owned()))
    }

    /// The key of this store's row in the version table: stores with different table names
    /// share a database (and its version table) but migrate independently.
    pub(crate) fn scope(&self) -> String {
        format!("{},{},{}", self.approvals.as_str(), self.runs.as_str(), self.sessions.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_pass() {
        for name in ["approvals", "_x", "Kern_Approvals_2", &"a".repeat(40)] {
            assert_eq!(Ident::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for name in ["", "1abc", "a-b", "a b", "a\"b", "x; DROP TABLE y", "é", &"a".repeat(41)] {
            assert!(matches!(Ident::new(name), Err(OpenError::InvalidName(n)) if n == name), "{name:?}");
        }
    }

    #[test]
    fn postgres_tables_are_schema_qualified() {
        let layout = Layout::new(Dialect::Postgres, Some("app"), &TableNames::default()).unwrap();
        assert_eq!(layout.table(&layout.runs), "\"app\".\"kern_runs\"");
        let layout = Layout::new(Dialect::Sqlite, None, &TableNames::default()).unwrap();
        assert_eq!(layout.table(&layout.runs), "\"kern_runs\"");
    }
}
