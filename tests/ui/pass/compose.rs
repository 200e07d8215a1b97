//! Everything together, under `deny(warnings, missing_docs)`: the generated code must not warn.
#![deny(warnings, missing_docs)]

use kern::prelude::*;
use kern::tools::ToolDefinition;

/// The public tools.
pub mod tools {
    use kern::prelude::*;

    /// Delete a user's data.
    #[approval]
    #[tool(requires_confirmation)]
    pub async fn delete_user_data(
        /// The user.
        user_id: String,
        ctx: &RunContext,
    ) -> Result<String, std::io::Error> {
        Ok(format!("{user_id} {}", ctx.run_id))
    }

    /// Ask a person for a value.
    #[tool(user_input_fields = ["value"], log_approval)]
    pub fn ask(label: String, mut value: Option<u32>) -> String {
        value.get_or_insert(0);
        format!("{label}: {value:?}")
    }

    /// Run elsewhere.
    #[kern::tools::tool(external_execution = true)]
    #[kern::approval::approval(type = "required", expires_in = "7d")]
    pub fn elsewhere(#[allow(unused_variables)] command: String) {}

    /// Delete a user's data, the old way.
    #[deprecated(note = "use `delete_user_data`")]
    #[tool]
    pub fn erase_user(user_id: String) -> String {
        user_id
    }
}

/// A tool nobody outside sees.
#[tool]
fn private_tool() -> u8 {
    1
}

fn definitions() -> Vec<ToolDefinition> {
    vec![
        tools::DeleteUserData.definition(),
        tools::Ask.definition(),
        tools::Elsewhere.definition(),
        PrivateTool.definition(),
        #[allow(deprecated)]
        tools::EraseUser.definition(),
    ]
}

fn main() {
    assert_eq!(definitions().len(), 5);
    assert_eq!(private_tool(), 1);
}
