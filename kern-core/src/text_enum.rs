//! String-backed enums: the statuses and kinds that are stored as TEXT columns, sent as JSON
//! strings and given by people on a command line or in a query string.

/// The error of parsing a text that names no value of such an enum: what was given and what
/// is allowed, so a person who typed it can correct it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{given}`: expected one of {}", allowed.join(", "))]
pub struct ParseEnumError {
    /// The enum, such as `ApprovalStatus`.
    pub kind: &'static str,
    /// The text that was given.
    pub given: String,
    /// Every text that names a value.
    pub allowed: &'static [&'static str],
}

/// Declares a string-backed enum: serde, `Display` and `FromStr` all use the given texts.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text of every value, in declaration order.
            pub const TEXTS: &'static [&'static str] = &[$($text),+];

            /// The stored text of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::text_enum::ParseEnumError;

            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::text_enum::ParseEnumError {
                        kind: stringify!($name),
                        given: other.to_owned(),
                        allowed: Self::TEXTS,
                    }),
                }
            }
        }
    };
}
pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use crate::approval::ApprovalStatus;

    #[test]
    fn texts_round_trip() {
        for status in ApprovalStatus::ALL {
            assert_eq!(status.as_str().parse::<ApprovalStatus>(), Ok(*status));
        }
    }

    #[test]
    fn an_unknown_text_says_what_was_given_and_what_is_allowed() {
        let err = "aproved".parse::<ApprovalStatus>().unwrap_err();
        assert_eq!(err.given, "aproved");
        assert_eq!(
            err.to_string(),
            "unknown ApprovalStatus `aproved`: expected one of pending, approved, rejected, expired, cancelled"
        );
    }
}
