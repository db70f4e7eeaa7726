//! Marketing resources (R-RES-1): banners, logos and HTML widgets the vendor
//! uploads, ready for partners to use with their own link.

use partnerd_domain::FieldErrors;
use partnerd_domain::errors::clean_text;
use partnerd_store::{NewAudit, NewResource, Resource};

use crate::{App, AppResult};

/// Largest image accepted: banners are small; the database holds them.
pub const MAX_IMAGE_BYTES: usize = 2 * 1024 * 1024;
pub const MAX_WIDGET_CHARS: usize = 20_000;
/// Where a widget's HTML takes the partner's link.
pub const LINK_PLACEHOLDER: &str = "{{link}}";

/// An upload as the console form sends it.
#[derive(Debug, Clone, Default)]
pub struct ResourceUpload {
    pub kind: String,
    pub title: String,
    /// (file name, bytes) of an image.
    pub file: Option<(String, Vec<u8>)>,
    pub html: Option<String>,
}

/// The image types browsers show in `<img>`, told by their first bytes (never
/// by the name or the browser's claim). SVG is refused: it can carry script.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A file name safe in a URL path and a `Content-Disposition` header.
fn safe_file_name(name: &str, content_type: &str) -> String {
    let stem: String = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    let stem = stem.trim_matches(['.', '-']).to_owned();
    let extension = content_type
        .rsplit('/')
        .next()
        .unwrap_or("bin")
        .replace("jpeg", "jpg");
    let base = stem
        .rsplit_once('.')
        .map_or(stem.as_str(), |(b, _)| b)
        .to_owned();
    format!(
        "{}.{extension}",
        if base.is_empty() {
            "resource".to_owned()
        } else {
            base
        }
    )
}

impl App {
    pub async fn upload_resource(
        &self,
        actor: &str,
        upload: ResourceUpload,
    ) -> AppResult<Resource> {
        let mut errors = FieldErrors::new();
        let kind = upload.kind.trim().to_owned();
        if !matches!(kind.as_str(), "banner" | "logo" | "widget") {
            errors.add("kind", "must be banner, logo or widget");
        }
        let title = errors.check("title", clean_text(&upload.title, 100, true));
        let mut image = None;
        let mut html = None;
        if kind == "widget" {
            let text = upload.html.unwrap_or_default();
            let text = text.trim();
            if text.is_empty() {
                errors.add("html", "is required for a widget");
            } else if text.chars().count() > MAX_WIDGET_CHARS {
                errors.add(
                    "html",
                    format!("must be at most {MAX_WIDGET_CHARS} characters"),
                );
            } else if !text.contains(LINK_PLACEHOLDER) {
                errors.add(
                    "html",
                    format!("must contain {LINK_PLACEHOLDER} where the partner's link goes"),
                );
            } else {
                html = Some(text.to_owned());
            }
        } else if kind == "banner" || kind == "logo" {
            match upload.file.filter(|(_, bytes)| !bytes.is_empty()) {
                None => errors.add("file", "is required: a PNG, JPEG, GIF or WebP image"),
                Some((_, bytes)) if bytes.len() > MAX_IMAGE_BYTES => {
                    errors.add(
                        "file",
                        format!("must be at most {} MiB", MAX_IMAGE_BYTES / 1024 / 1024),
                    );
                }
                Some((name, bytes)) => match (image_type(&bytes), imagesize::blob_size(&bytes)) {
                    (Some(content_type), Ok(size)) => {
                        let file_name = safe_file_name(&name, content_type);
                        image = Some((
                            content_type.to_owned(),
                            bytes,
                            file_name,
                            size.width as i64,
                            size.height as i64,
                        ));
                    }
                    _ => errors.add("file", "must be a PNG, JPEG, GIF or WebP image"),
                },
            }
        }
        errors.into_result()?;
        let new = NewResource {
            kind,
            title: title.expect("checked"),
            image,
            html,
            created_at: self.now(),
        };
        let audit = NewAudit::new(self.now(), actor, "resource.create", "resource");
        Ok(self.store.create_resource(new, audit).await?)
    }

    pub async fn archive_resource(&self, actor: &str, id: i64) -> AppResult<()> {
        let audit = NewAudit::new(
            self.now(),
            actor,
            "resource.archive",
            format!("resource:{id}"),
        );
        Ok(self.store.archive_resource(id, audit, self.now()).await?)
    }

    /// The public address of an image resource.
    pub fn resource_url(&self, resource: &Resource) -> String {
        format!(
            "{}/resources/{}/{}",
            self.config.public_url(),
            resource.id,
            resource.file_name.as_deref().unwrap_or("file")
        )
    }

    /// The HTML a partner pastes on their site, carrying their own link (R-RES-1).
    pub fn embed_snippet(&self, resource: &Resource, link: &str) -> String {
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        match &resource.html {
            Some(html) => html.replace(LINK_PLACEHOLDER, &escape(link)),
            None => format!(
                "<a href=\"{}\" rel=\"sponsored noopener\"><img src=\"{}\" width=\"{}\" height=\"{}\" alt=\"{}\"></a>",
                escape(link),
                escape(&self.resource_url(resource)),
                resource.width.unwrap_or(0),
                resource.height.unwrap_or(0),
                escape(&resource.title)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_types_come_from_the_bytes_not_the_name() {
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(image_type(b"<svg xmlns=..."), None);
        assert_eq!(image_type(b"GIF89a...."), Some("image/gif"));
    }

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(
            safe_file_name("../../etc/passwd", "image/png"),
            "passwd.png"
        );
        assert_eq!(
            safe_file_name("Spring Banner 728x90.PNG", "image/png"),
            "Spring-Banner-728x90.png"
        );
        assert_eq!(safe_file_name("", "image/jpeg"), "resource.jpg");
    }
}
