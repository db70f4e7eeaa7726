//! Marketing resources (R-RES-1): admins upload, partners copy snippets with
//! their own link, images are served publicly, downloads are counted.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use crate::helpers::{Client, TestApp};

/// A 2×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x7b, 0x40, 0xe8,
    0xdd, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0xa9, 0x8b, 0x26, 0xb1, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Posts a multipart upload with the CSRF token in the action URL, as the form does.
async fn upload(
    client: &mut Client,
    csrf: Option<&str>,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> crate::helpers::Resp {
    let boundary = "partnerd-test-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: image/png\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let path = match csrf {
        Some(token) => format!("/admin/resources?csrf_token={token}"),
        None => "/admin/resources".to_owned(),
    };
    let cookies = client.cookie_header();
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::COOKIE, cookies)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .expect("request");
    client.send_request(request).await
}

#[tokio::test]
async fn an_admin_uploads_a_banner_and_a_partner_embeds_it_with_their_own_link() {
    let t = TestApp::sqlite().await;
    let admin = t.admin().await;
    let mut console = t.login_as(&admin).await;
    assert_eq!(console.get("/admin/resources").await.status, StatusCode::OK);
    let csrf = console.current_csrf().await;

    // Without the token nothing is written.
    let refused = upload(
        &mut console,
        None,
        &[("kind", "banner"), ("title", "Spring")],
        Some(("spring.png", PNG)),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(t.app.store.list_resources(true).await.unwrap().is_empty());

    // Not an image, and a widget without the link placeholder: named errors, nothing written.
    let bad = upload(
        &mut console,
        Some(&csrf),
        &[("kind", "banner"), ("title", "Fake")],
        Some(("x.png", b"<svg onload=alert(1)>")),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"file-error\""), "{}", bad.body);
    let bad = upload(
        &mut console,
        Some(&csrf),
        &[("kind", "widget"), ("title", "W"), ("html", "<b>hi</b>")],
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"html-error\""));
    assert!(t.app.store.list_resources(true).await.unwrap().is_empty());

    let done = upload(
        &mut console,
        Some(&csrf),
        &[("kind", "banner"), ("title", "Spring banner")],
        Some(("Spring 2x1.png", PNG)),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let resource = t.app.store.list_resources(false).await.unwrap().remove(0);
    assert_eq!(
        (resource.width, resource.height),
        (Some(2), Some(1)),
        "sizes read from the image"
    );

    // The partner's panel shows a snippet with their own link.
    let partner = t.partner("Pat Partner").await;
    let mut panel = t.login_as(&partner).await;
    let page = panel.get("/panel/resources").await;
    assert_eq!(page.status, StatusCode::OK);
    let public_id = t.public_id(&partner).await;
    assert!(
        page.body.contains(&format!("/r/{public_id}")),
        "the snippet carries the partner's link"
    );
    assert!(
        page.body.contains("width=&#34;2&#34; height=&#34;1&#34;"),
        "the image's size is in the snippet"
    );

    // The image is public; a download from the panel is counted.
    let file_name = resource.file_name.clone().unwrap();
    let image = t
        .client()
        .get(&format!("/resources/{}/{file_name}", resource.id))
        .await;
    assert_eq!(
        (image.status, image.header("content-type")),
        (StatusCode::OK, Some("image/png"))
    );
    let download = panel
        .get(&format!("/panel/resources/{}/download", resource.id))
        .await;
    assert_eq!(download.status, StatusCode::OK);
    assert!(
        download
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(
        t.app
            .store
            .get_resource(resource.id)
            .await
            .unwrap()
            .unwrap()
            .downloads,
        1
    );

    // Archived: no longer listed or served.
    let archived = console
        .post_form(&format!("/admin/resources/{}/archive", resource.id), &[])
        .await;
    assert_eq!(archived.status, StatusCode::SEE_OTHER);
    assert_eq!(
        t.client()
            .get(&format!("/resources/{}/{file_name}", resource.id))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(t.app.store.list_resources(false).await.unwrap().is_empty());
}
