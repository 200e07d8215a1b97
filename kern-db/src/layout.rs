//! Where a store's rows live: the checked names of its tables, and of the schema they are in.

use crate::error::OpenError;

/// A checked SQL identifier. Names come from configuration and end up in SQL text (they cannot
/// be bound as parameters), so only plain identifiers are let through, and always quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident(String);

impl Ident {
    /// The longest accepted name. Postgres cuts identifiers at 63 bytes; the names of indexes
    /// and triggers add up to 12 bytes to the table name ([`suffixed`](Self::suffixed)), so 40
    /// keeps every derived name whole and distinct.
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

    /// The name of something kept for this one (an index, a trigger): this name and `suffix`,
    /// which is `_` and at most 11 letters or underscores, so the result is an identifier too.
    pub(crate) fn suffixed(&self, suffix: &str) -> Ident {
        Ident(format!("{}{suffix}", self.0))
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

/// The checked tables of one store.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The schema the tables live in (Postgres); SQLite has none.
    pub(crate) schema: Option<Ident>,
    pub(crate) approvals: Ident,
    pub(crate) runs: Ident,
    pub(crate) sessions: Ident,
}

/// The table holding one schema-version row per set of kern tables in the database.
pub(crate) const VERSION_TABLE: &str = "kern_schema_version";

impl Layout {
    pub(crate) fn new(schema: Option<&str>, names: &TableNames) -> Result<Self, OpenError> {
        Ok(Layout {
            schema: schema.map(Ident::new).transpose()?,
            approvals: Ident::new(&names.approvals)?,
            runs: Ident::new(&names.runs)?,
            sessions: Ident::new(&names.sessions)?,
        })
    }

    /// The name of a table (or of a function kept with the tables) as it goes into SQL:
    /// quoted, and qualified by the schema when the tables live in one.
    pub(crate) fn qualified(&self, name: &Ident) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", schema.quoted(), name.quoted()),
            None => name.quoted(),
        }
    }

    /// The trail's events of this store's rows.
    pub(crate) fn events(&self) -> Ident {
        self.approvals.suffixed("_events")
    }

    /// The votes on this store's rows.
    pub(crate) fn votes(&self) -> Ident {
        self.approvals.suffixed("_votes")
    }

    /// How many of this store's rows are pending, kept in shards (see `schema::pending_count`).
    pub(crate) fn pending_counts(&self) -> Ident {
        self.approvals.suffixed("_pending")
    }

    /// The API keys that sign in to this store's rows.
    pub(crate) fn api_keys(&self) -> Ident {
        self.approvals.suffixed("_api_keys")
    }

    pub(crate) fn version_table(&self) -> String {
        self.qualified(&Ident(VERSION_TABLE.to_owned()))
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
    fn tables_in_a_schema_are_qualified_by_it() {
        let layout = Layout::new(Some("app"), &TableNames::default()).unwrap();
        assert_eq!(layout.qualified(&layout.runs), "\"app\".\"kern_runs\"");
        let layout = Layout::new(None, &TableNames::default()).unwrap();
        assert_eq!(layout.qualified(&layout.runs), "\"kern_runs\"");
    }
}
