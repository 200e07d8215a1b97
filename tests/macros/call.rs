//! Calling `#[tool]` functions through the `Tool` trait, as an agent does: the model's JSON in,
//! the function's result (or a tool error, never a panic) out.

use kern::tools::{RunContext, Tool, ToolError, tool};
use serde::Serialize;
use serde_json::{Value, json};

async fn call(tool: &dyn Tool, args: Value) -> Result<Value, ToolError> {
    tool.call(&RunContext::default(), args).await
}

fn invalid(message: &str) -> Result<Value, ToolError> {
    Err(ToolError::InvalidArguments(message.into()))
}

/// Greets someone, politely or not.
#[tool]
async fn greet(name: String, times: Option<u8>, ctx: &RunContext) -> String {
    let times = usize::from(times.unwrap_or(1));
    format!("{}from run {}", format!("hello {name}, ").repeat(times), ctx.run_id)
}

#[tool]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[tool]
fn ping() -> &'static str {
    "pong"
}

#[tool]
fn nothing() {}

#[tokio::test]
async fn good_json_runs_the_function() {
    assert_eq!(call(&Add, json!({"a": 2, "b": 40})).await, Ok(json!(42)));
    assert_eq!(call(&Greet, json!({"name": "Ada"})).await, Ok(json!("hello Ada, from run ")));
    assert_eq!(call(&Greet, json!({"name": "Ada", "times": 2})).await, Ok(json!("hello Ada, hello Ada, from run ")));
    assert_eq!(call(&Greet, json!({"name": "Ada", "times": null})).await, Ok(json!("hello Ada, from run ")));
    assert_eq!(call(&Nothing, json!({})).await, Ok(Value::Null));
}

#[tokio::test]
async fn the_run_context_is_injected() {
    let ctx = RunContext { run_id: "run-7".into(), session_id: "s".into(), ..RunContext::default() };
    assert_eq!(Greet.call(&ctx, json!({"name": "Ada"})).await, Ok(json!("hello Ada, from run run-7")));
}

#[tokio::test]
async fn null_stands_for_no_arguments() {
    assert_eq!(call(&Ping, Value::Null).await, Ok(json!("pong")));
    assert_eq!(call(&Nothing, Value::Null).await, Ok(Value::Null));
    assert_eq!(call(&Add, Value::Null).await, invalid("missing field `a`"));
}

#[tokio::test]
async fn bad_json_is_a_tool_error_for_the_model() {
    assert_eq!(call(&Add, json!({"a": "2", "b": 40})).await, invalid("invalid type: string \"2\", expected i64"));
    assert_eq!(call(&Add, json!({"a": 2})).await, invalid("missing field `b`"));
    assert_eq!(call(&Add, json!({"a": 2, "b": 3, "c": 4})).await, invalid("unknown field `c`, expected `a` or `b`"));
    assert_eq!(call(&Ping, json!({"extra": 1})).await, invalid("unknown field `extra`, there are no fields"));
    assert_eq!(
        call(&Greet, json!({"name": "Ada", "times": 300})).await,
        invalid("invalid value: integer `300`, expected u8")
    );
    assert_eq!(
        call(&Add, json!("a=2, b=40")).await,
        invalid("invalid type: string \"a=2, b=40\", expected the arguments of `add` as a JSON object")
    );
    // serde would read `[2, 40]` as the fields in order; the schema says object, so it is refused.
    assert_eq!(
        call(&Add, json!([2, 40])).await,
        invalid("invalid type: sequence, expected the arguments of `add` as a JSON object")
    );
    for garbage in [json!(1), json!(true), json!([]), json!({"a": [], "b": {}}), json!({"a": null, "b": 1})] {
        let result = call(&Add, garbage.clone()).await;
        assert!(matches!(result, Err(ToolError::InvalidArguments(_))), "{garbage}: {result:?}");
    }
}

#[derive(Serialize)]
struct Receipt {
    id: u32,
    lines: Vec<String>,
}

#[tool]
fn make_receipt(id: u32) -> Receipt {
    Receipt { id, lines: vec!["coffee".into()] }
}

#[test]
fn a_serializable_return_value_becomes_json() {
    let result = tokio_block_on(call(&MakeReceipt, json!({"id": 7})));
    assert_eq!(result, Ok(json!({"id": 7, "lines": ["coffee"]})));
}

fn tokio_block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(future)
}

#[derive(Debug)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

#[tool]
fn divide(a: f64, b: f64) -> Result<f64, String> {
    if b == 0.0 { Err("division by zero".into()) } else { Ok(a / b) }
}

#[tool]
async fn fetch(key: String) -> Result<Vec<u8>, Refused> {
    if key == "secret" { Err(Refused("no access")) } else { Ok(key.into_bytes()) }
}

#[tool]
fn read_file(path: String) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

#[tokio::test]
async fn result_returns_ok_and_err() {
    assert_eq!(call(&Divide, json!({"a": 1.0, "b": 4.0})).await, Ok(json!(0.25)));
    assert_eq!(call(&Divide, json!({"a": 1.0, "b": 0.0})).await, Err(ToolError::Failed("division by zero".into())));
    assert_eq!(call(&Fetch, json!({"key": "ab"})).await, Ok(json!([97, 98])));
    assert_eq!(call(&Fetch, json!({"key": "secret"})).await, Err(ToolError::Failed("refused: no access".into())));
    let missing = call(&ReadFile, json!({"path": "/definitely/not/here"})).await;
    assert!(matches!(missing, Err(ToolError::Failed(text)) if text.contains("No such file")));
}

#[tool(user_input_fields = ["amount"])]
fn pay(to: String, amount: u32, ctx: &RunContext) -> String {
    format!("{amount} to {to} in {}", ctx.session_id)
}

#[tokio::test]
async fn user_input_values_arrive_merged_into_the_arguments() {
    let ctx = RunContext { session_id: "s-1".into(), ..RunContext::default() };
    assert_eq!(Pay.call(&ctx, json!({"to": "bob", "amount": 5})).await, Ok(json!("5 to bob in s-1")));
    assert_eq!(Pay.call(&ctx, json!({"to": "bob"})).await, invalid("missing field `amount`"));
}

/// An argument may be called `ctx` or `args` like the generated code's own names.
#[tool]
fn shadowing(ctx: String, args: u8, context: &RunContext) -> String {
    format!("{ctx} {args} {}", context.run_id)
}

/// A tool may be named like the generated code's helpers.
#[tool]
fn check(value: u8) -> u8 {
    value + 1
}

/// An argument may have the tool's own name.
#[tool]
fn echo(echo: String) -> String {
    echo
}

/// The same, for an async tool.
#[tool]
async fn shout(shout: String) -> String {
    shout.to_uppercase()
}

#[tokio::test]
async fn names_do_not_clash_with_the_generated_code() {
    let ctx = RunContext { run_id: "r".into(), ..RunContext::default() };
    assert_eq!(Shadowing.call(&ctx, json!({"ctx": "c", "args": 1})).await, Ok(json!("c 1 r")));
    assert_eq!(Check.call(&ctx, json!({"value": 1})).await, Ok(json!(2)));
    assert_eq!(Echo.call(&ctx, json!({"echo": "hi"})).await, Ok(json!("hi")));
    assert_eq!(Shout.call(&ctx, json!({"shout": "hi"})).await, Ok(json!("HI")));
}

/// Waits for a second call of itself: two calls return only if they run at once.
#[tool]
async fn meet() -> String {
    static MEETING: std::sync::LazyLock<tokio::sync::Barrier> =
        std::sync::LazyLock::new(|| tokio::sync::Barrier::new(2));
    MEETING.wait().await;
    "met".to_owned()
}

#[tokio::test]
async fn tools_run_concurrently_behind_trait_objects() {
    let tools: Vec<std::sync::Arc<dyn Tool>> = vec![std::sync::Arc::new(Meet), std::sync::Arc::new(Meet)];
    let calls: Vec<_> = tools
        .iter()
        .map(|tool| {
            let tool = tool.clone();
            tokio::spawn(async move { tool.call(&RunContext::default(), json!({})).await })
        })
        .collect();
    for call in calls {
        let met = tokio::time::timeout(std::time::Duration::from_secs(30), call).await.expect("the calls ran at once");
        assert_eq!(met.expect("task"), Ok(json!("met")));
    }
}
