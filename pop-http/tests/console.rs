//! The web console's router: assets with their content types, the page's read-only mode, and a
//! read-only API behind it refusing changes.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use pop_http::console::{self, ConsoleConfig};
use tower::ServiceExt;

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String, String) {
    let res = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let ct = res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let loc = res.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned());
    let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, ct, loc.unwrap_or(body))
}

#[tokio::test]
async fn assets_are_served_with_their_content_types() {
    let app = axum::Router::new().nest("/ui", console::router(ConsoleConfig::default()));
    let (status, _, loc) = get(&app, "/ui").await;
    println!("/ui {status} {loc}");
    let (status, ct, body) = get(&app, "/ui/").await;
    println!("/ui/ {status} {ct}");
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<base href=\"/ui/\">"), "{body}");
}
