//! A crate that reaches kern through a re-export, as an application's own crate that hands kern
//! on to the crates built on it: `crate = ".."` names the path through that module.
#![deny(warnings, missing_docs)]

/// What the application's crate exposes.
pub mod platform {
    pub use kern;
}

/// Tools that reach kern only through `platform`.
pub mod tools {
    use crate::platform::kern::approval::approval;
    use crate::platform::kern::tools::tool;

    /// Through a path from the crate root.
    #[tool(crate = "crate::platform::kern")]
    pub fn from_the_root(text: String) -> usize {
        text.len()
    }

    /// Through a path relative to this module, given on the approval.
    #[approval(type = "required", crate = "super::platform::kern")]
    #[tool]
    pub async fn relative() -> Vec<u8> {
        Vec::new()
    }
}

fn main() {
    use platform::kern::approval::ApprovalPolicy;
    use platform::kern::tools::{Hitl, Tool};

    assert_eq!(tools::FromTheRoot.definition().name, "from_the_root");
    assert_eq!(tools::FromTheRoot.definition().hitl, Hitl::None);
    assert_eq!(tools::Relative.definition().approval, Some(ApprovalPolicy::REQUIRED));
    assert_eq!(tools::from_the_root("four".into()), 4);
}
