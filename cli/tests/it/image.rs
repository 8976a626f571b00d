//! `image` and `generate_image` through the binary, against a loopback server speaking
//! OpenAI's Images API; `[image]` and `[providers.NAME.media]` validation errors name their
//! keys.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

/// A 1x1 red PNG.
const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

async fn images_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"created": 1, "data": [{"b64_json": PNG_1X1}]})),
        )
        .mount(&server)
        .await;
    server
}

fn png_bytes() -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(PNG_1X1).unwrap()
}

fn images_config(server: &str, extra: &str) -> String {
    format!(
        r#"
[providers.sd]
kind = "llama-swap"
base_url = "{server}"

[store]
url = "sqlite://{{dir}}/executus.db"
{extra}
"#
    )
}

async fn image_requests(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/v1/images/generations")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn image_writes_the_file_the_user_named() {
    let server = images_server().await;
    let ws = Workspace::new(&images_config(&server.uri(), ""));
    let out = ws
        .run(
            &[
                "image",
                "--prompt",
                "a red fox",
                "--model",
                "sd/sd-turbo",
                "--out",
                "out/fox.png",
                "--size",
                "512x512",
            ],
            None,
        )
        .await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("wrote out/fox.png (PNG 1x1, "), "{stdout}");
    assert!(stdout.contains("from sd/sd-turbo"), "{stdout}");
    assert_eq!(std::fs::read(ws.path().join("out/fox.png")).unwrap(), png_bytes());
    assert_eq!(
        image_requests(&server).await,
        [
            json!({"model": "sd-turbo", "prompt": "a red fox", "n": 1, "size": "512x512", "response_format": "b64_json"})
        ]
    );
    // A misleading extension is written as asked, with a warning.
    let out =
        ws.run(&["image", "--prompt", "a fox", "--model", "sd/sd-turbo", "--out", "fox.jpg"], None).await;
    assert_exit(&out, 0);
    assert!(text(&out.stderr).contains("fox.jpg holds a PNG image"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn image_uses_the_image_section_and_generated_names() {
    let server = images_server().await;
    let ws = Workspace::new(&images_config(
        &server.uri(),
        "[image]\nmodel = \"sd/sd-turbo\"\noutput_dir = \"pictures\"\nsize = \"256x256\"\n",
    ));
    let out = ws.run(&["image", "--prompt", "a lighthouse", "--json"], None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    let written = std::path::PathBuf::from(doc["path"].as_str().unwrap());
    assert!(
        written.starts_with("pictures") || written.starts_with(ws.path().join("pictures")),
        "{written:?}"
    );
    let name = written.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with("image-") && name.ends_with(".png"), "{name}");
    assert_eq!(
        (doc["mime"].as_str(), doc["width"].as_u64(), doc["model"].as_str()),
        (Some("image/png"), Some(1), Some("sd/sd-turbo"))
    );
    assert_eq!(std::fs::read(ws.path().join("pictures").join(&name)).unwrap(), png_bytes());
    assert_eq!(image_requests(&server).await[0]["size"], "256x256", "the configured size");
}

#[tokio::test(flavor = "multi_thread")]
async fn image_errors_have_their_exit_codes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": "server_error", "message": "CUDA out of memory"})),
        )
        .mount(&server)
        .await;
    let ws = Workspace::new(&images_config(&server.uri(), ""));
    let out = ws.run(&["image", "--prompt", "a fox"], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("no image model"), "{}", text(&out.stderr));
    let out = ws.run(&["image", "--prompt", "a fox", "--model", "sd/x", "--size", "big"], None).await;
    assert_exit(&out, 2);
    let out = ws.run(&["image", "--prompt", "a fox", "--model", "nobody/x"], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("unknown provider"), "{}", text(&out.stderr));
    let out = ws.run(&["image", "--prompt", "a fox", "--model", "sd/x", "--out", "x.png"], None).await;
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("server_error: CUDA out of memory"), "{}", text(&out.stderr));
    assert!(!ws.path().join("x.png").exists(), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_lists_generate_image_draws_into_the_output_folder() {
    let images = images_server().await;
    let chat = openai_server(|req| {
        if has_tool_result(req) {
            ResponseTemplate::new(200).set_body_json(text_answer("drawn"))
        } else {
            ResponseTemplate::new(200).set_body_json(tool_answer(
                "call_1",
                "generate_image",
                &json!({"prompt": "a red dot"}),
            ))
        }
    })
    .await;
    let config = format!(
        "{}\n[providers.sd]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n\n[image]\nmodel = \"sd/sd-turbo\"\noutput_dir = \"art\"\n\n[agents.artist]\nsystem = \"You draw.\"\nmodel = \"mock/test-model\"\ntools = [\"generate_image\"]\n",
        base_config(&chat.uri()),
        images.uri()
    );
    let ws = Workspace::new(&config);
    let out = ws.run(&["run", "--agent", "artist", "--input", "Draw a red dot.", "--json"], None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    assert_eq!(doc["output"], "drawn");
    let files: Vec<_> =
        std::fs::read_dir(ws.path().join("art")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), png_bytes());
    // The model's second request carried the tool result naming that file.
    let second = &calls(&chat).await[1];
    let tool_message = messages(second).into_iter().find(|m| m["role"] == "tool").unwrap();
    let content = tool_message["content"].as_str().unwrap();
    assert!(content.contains(files[0].file_name().unwrap().to_str().unwrap()), "{content}");
    let first: Value = serde_json::from_slice(&calls(&chat).await[0].body).unwrap();
    assert_eq!(first["tools"][0]["function"]["name"], "generate_image", "the agent opted in");
}

#[tokio::test(flavor = "multi_thread")]
async fn image_and_media_settings_are_validated_with_their_keys() {
    let cases = [
        ("[image]\noutput_dir = \"art\"\n", "image.output_dir"),
        ("[image]\nmodel = \"sd/x\"\nsize = \"wide\"\n", "image.size"),
        ("[image]\nmodel = \"\"\n", "image.model"),
        ("[providers.sd.media]\nkind = \"dalle\"\n", "providers.sd.media.kind"),
        ("[providers.sd.media]\nformats = [\"bmp\"]\n", "providers.sd.media.formats"),
        ("[providers.sd.media]\nformats = [\"gif\"]\n", "providers.sd.media.formats"),
        ("[providers.sd.media]\nmax_long_side = 2\n", "providers.sd.media.max_long_side"),
        ("[providers.sd.media]\nmax_side = 2\n", "unknown field: found `max_side`"),
    ];
    for (extra, names) in cases {
        let ws = Workspace::new(&images_config("http://127.0.0.1:9", extra));
        let out = ws.run(&["config"], None).await;
        assert_exit(&out, 2);
        assert!(text(&out.stderr).contains(names), "{extra}: {}", text(&out.stderr));
    }
    // A valid override loads.
    let ws = Workspace::new(&images_config(
        "http://127.0.0.1:9",
        "[providers.sd.media]\nkind = \"anthropic\"\nformats = [\"jpeg\", \"png\"]\nmax_image_bytes = 500000\n",
    ));
    assert_exit(&ws.run(&["config"], None).await, 0);
}
