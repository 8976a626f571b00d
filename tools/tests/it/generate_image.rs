//! `generate_image`: argument checks, files written only under the configured folder with
//! generated names, and a full agent run — a scripted model calls the tool, the image comes
//! from a loopback server speaking OpenAI's Images API, and the model's next request holds a
//! tool result naming the file that now exists.

use std::sync::Arc;

use base64::Engine as _;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::providers::ProviderConfig;
use executus::llm::providers::openai::OpenAi;
use executus::llm::{ImageModel, ImageSize, Part, Provider, Registry, Role, ToolCall};
use executus::tool::{Tool, ToolContext, ToolError, ToolRegistry};
use executus::{Identity, RunId, RunnableAgent, Runtime, RuntimeConfig};
use executus_tools::GenerateImage;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A tiny PNG (1x1, red), as a server would send it.
const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

async fn images_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1, "data": [{"b64_json": PNG_1X1, "revised_prompt": "a red dot, centred"}]
        })))
        .mount(&server)
        .await;
    server
}

fn image_model(server: &MockServer) -> Arc<dyn ImageModel> {
    OpenAi::new(ProviderConfig::new("sd", format!("{}/v1", server.uri())))
        .image_model("sd-turbo")
        .expect("images")
}

fn ctx() -> ToolContext {
    ToolContext::new(RunId::new(), Identity::default(), "artist", "call-1")
}

fn files_of(result: &Value) -> Vec<std::path::PathBuf> {
    result["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path").into())
        .collect()
}

#[tokio::test]
async fn arguments_are_checked_and_no_path_can_be_chosen() {
    let server = images_server().await;
    let folder = tempfile::tempdir().expect("tempdir");
    let tool = GenerateImage::new(image_model(&server), folder.path()).expect("tool");
    let schema = tool.parameters();
    let properties: Vec<&String> = schema["properties"].as_object().expect("object").keys().collect();
    assert_eq!(properties, ["n", "prompt", "size"], "no path or name argument exists");
    let refused = [
        (json!({"prompt": "a dot", "path": "/etc/passwd"}), "unknown field `path`"),
        (json!({"prompt": "a dot", "filename": "../../x.png"}), "unknown field `filename`"),
        (json!({"prompt": "  "}), "`prompt` is empty"),
        (json!({"prompt": "a dot", "n": 9}), "`n` must be 1 to 4"),
        (json!({"prompt": "a dot", "size": "huge"}), "expected WIDTHxHEIGHT"),
        (json!(["a dot"]), "must be a JSON object"),
    ];
    for (args, says) in refused {
        let e = tool.call(ctx(), args.clone()).await.expect_err("refused");
        assert!(matches!(e, ToolError::InvalidArgs { .. }), "{args}: {e}");
        assert!(e.to_string().contains(says), "{args}: {e}");
    }
    assert!(server.received_requests().await.unwrap_or_default().is_empty(), "nothing generated");
    assert_eq!(std::fs::read_dir(folder.path()).expect("dir").count(), 0, "nothing written");
}

#[tokio::test]
async fn files_go_only_under_the_folder_with_generated_names() {
    let server = images_server().await;
    let root = tempfile::tempdir().expect("tempdir");
    let folder = root.path().join("out/images");
    let tool = GenerateImage::new(image_model(&server), &folder)
        .expect("tool")
        .with_default_size(ImageSize::new(64, 64));
    let first = tool.call(ctx(), json!({"prompt": "a red dot"})).await.expect("image").text;
    let first: Value = serde_json::from_str(&first).expect("JSON result");
    let second: Value =
        serde_json::from_str(&tool.call(ctx(), json!({"prompt": "again"})).await.expect("image").text)
            .expect("JSON");
    let canonical = std::fs::canonicalize(&folder).expect("created");
    let paths: Vec<_> = files_of(&first).into_iter().chain(files_of(&second)).collect();
    assert_eq!(paths.len(), 2);
    assert_ne!(paths[0], paths[1], "fresh names, nothing overwritten");
    for p in &paths {
        assert_eq!(p.parent(), Some(canonical.as_path()), "{p:?}: directly inside the folder");
        let name = p.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(name.starts_with("image-") && name.ends_with("-1.png"), "{name}");
        let bytes = std::fs::read(p).expect("written");
        assert_eq!(bytes, base64::engine::general_purpose::STANDARD.decode(PNG_1X1).expect("b64"));
    }
    assert_eq!(first["files"][0]["mime"], "image/png");
    assert_eq!(
        (first["files"][0]["width"].as_u64(), first["files"][0]["height"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(first["files"][0]["revised_prompt"], "a red dot, centred");
    assert_eq!(first["model"], "sd/sd-turbo");
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap_or_default()[0].body).expect("JSON");
    assert_eq!(sent["size"], "64x64", "the configured default size");
    // The folder holds exactly the two files, nothing else was created anywhere under root.
    assert_eq!(std::fs::read_dir(&folder).expect("dir").count(), 2);
}

#[tokio::test]
async fn a_failed_generation_is_an_error_result_naming_the_cause() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "prompt required"})))
        .mount(&server)
        .await;
    let folder = tempfile::tempdir().expect("tempdir");
    let tool = GenerateImage::new(image_model(&server), folder.path()).expect("tool");
    let e = tool.call(ctx(), json!({"prompt": "a dot"})).await.expect_err("failed");
    assert!(matches!(e, ToolError::Failed { .. }), "{e}");
    assert!(e.to_string().contains("prompt required"), "{e}");
    assert_eq!(std::fs::read_dir(folder.path()).expect("dir").count(), 0);
}

#[tokio::test]
async fn an_agent_run_calls_generate_image_and_sees_the_file() {
    let server = images_server().await;
    let folder = tempfile::tempdir().expect("tempdir");
    // The image chain comes from the registry, as a host builds it.
    let images = Registry::new();
    images
        .add_provider(Arc::new(OpenAi::new(ProviderConfig::new("sd", format!("{}/v1", server.uri())))))
        .expect("sd");
    let chain: Arc<dyn ImageModel> = Arc::new(images.image_chain("sd/sd-turbo").expect("image chain"));
    let tool = GenerateImage::new(chain, folder.path()).expect("tool");

    let fake = FakeProvider::new("fake");
    fake.push(
        "m",
        Outcome::tool_calls([ToolCall {
            id: "c1".into(),
            name: "generate_image".into(),
            args: json!({"prompt": "a red dot on white", "size": "512x512"}),
            signature: None,
        }]),
    );
    fake.push("m", Outcome::text("Here is your picture."));
    let registry = Registry::new();
    registry.add_provider(Arc::new(fake.clone())).expect("fake");
    let runtime = Runtime::builder()
        .registry(registry)
        .tools(ToolRegistry::new().with(Arc::new(tool)))
        .config(RuntimeConfig { streaming: false, ..RuntimeConfig::default() })
        .build();
    let agent = RunnableAgent::new("artist", "You draw.", "fake/m").with_tools(["generate_image"]);
    let outcome = runtime.run(agent, "Draw a red dot.").await.expect("admitted");
    assert!(outcome.is_completed(), "{:?}", outcome.end);
    assert_eq!(outcome.output.as_deref(), Some("Here is your picture."));

    // The model's second request carried the tool result naming the file.
    let second = &fake.requests_for("m")[1];
    let result = second
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .flat_map(|m| &m.parts)
        .find_map(|p| match p {
            Part::ToolResult(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a tool result");
    assert!(!result.is_error, "{}", result.content);
    let value: Value = serde_json::from_str(&result.content).expect("JSON result");
    let file = &files_of(&value)[0];
    assert!(file.starts_with(std::fs::canonicalize(folder.path()).expect("folder")), "{file:?}");
    assert!(result.content.contains(&file.display().to_string()));
    assert_eq!(value["model"], "sd/sd-turbo");
    assert!(file.exists(), "the file the model was told about exists");
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap_or_default()[0].body).expect("JSON");
    assert_eq!(
        (sent["prompt"].as_str(), sent["size"].as_str()),
        (Some("a red dot on white"), Some("512x512"))
    );
}

#[tokio::test]
async fn an_agent_without_it_in_its_allowlist_is_not_offered_it() {
    let server = images_server().await;
    let folder = tempfile::tempdir().expect("tempdir");
    let tool = GenerateImage::new(image_model(&server), folder.path()).expect("tool");
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("no tools here"));
    let registry = Registry::new();
    registry.add_provider(Arc::new(fake.clone())).expect("fake");
    let runtime = Runtime::builder()
        .registry(registry)
        .tools(ToolRegistry::new().with(Arc::new(tool)))
        .config(RuntimeConfig { streaming: false, ..RuntimeConfig::default() })
        .build();
    let outcome = runtime.run(RunnableAgent::new("plain", "You talk.", "fake/m"), "hi").await.expect("ran");
    assert!(outcome.is_completed());
    assert!(fake.requests_for("m")[0].tools.is_empty(), "opt-in: not offered");
}
