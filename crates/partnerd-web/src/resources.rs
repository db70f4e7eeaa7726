//! Marketing resources (R-RES-1): admins upload banners, logos and widgets;
//! signed-in partners browse them and copy a snippet carrying their own link;
//! images are served publicly (partners embed them on their sites) from the
//! database, so every node serves the same files.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{FromRequest, Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use partnerd_app::resources::ResourceUpload;
use partnerd_app::{App, AppError};
use partnerd_domain::FieldErrors;
use partnerd_domain::policy::Action;
use partnerd_store::{Campaign, Resource};
use serde::Deserialize;

use crate::context::{Ctx, flash_cookie};
use crate::errors::{WebError, WebResult};
use crate::views::{Layout, admin_nav, panel_nav, render};

/// A resource with what the partner's page shows for it.
pub struct ResourceCard {
    pub resource: Resource,
    pub url: Option<String>,
    pub snippet: String,
}

#[derive(Template)]
#[template(path = "admin_resources.html")]
pub struct AdminResourcesPage {
    pub layout: Layout,
    pub resources: Vec<ResourceCard>,
    pub errors: BTreeMap<String, String>,
    pub form: BTreeMap<String, String>,
    /// The kind selected in the form.
    pub kind: String,
}

#[derive(Template)]
#[template(path = "panel_resources.html")]
pub struct PanelResourcesPage {
    pub layout: Layout,
    pub resources: Vec<ResourceCard>,
    pub campaigns: Vec<Campaign>,
    pub selected: String,
    pub link: String,
}

fn cards(app: &App, resources: Vec<Resource>, link: &str) -> Vec<ResourceCard> {
    resources
        .into_iter()
        .map(|resource| ResourceCard {
            url: resource
                .file_name
                .as_ref()
                .map(|_| app.resource_url(&resource)),
            snippet: app.embed_snippet(&resource, link),
            resource,
        })
        .collect()
}

async fn admin_page(
    app: &App,
    ctx: &Ctx,
    errors: BTreeMap<String, String>,
    form: BTreeMap<String, String>,
) -> WebResult<Response> {
    let resources = app
        .store
        .list_resources(false)
        .await
        .map_err(AppError::from)?;
    let example = format!("{}/r/EXAMPLE", app.config.public_url());
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = AdminResourcesPage {
        layout: ctx.layout("Resources", admin_nav("/admin/resources", true)),
        resources: cards(app, resources, &example),
        errors,
        kind: form.get("kind").cloned().unwrap_or_else(|| "banner".into()),
        form,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn admin_list(State(app): State<App>, ctx: Ctx) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    admin_page(&app, &ctx, BTreeMap::new(), BTreeMap::new()).await
}

/// Reads the upload form. Fields beyond what the form has are ignored; a file
/// over the limit stops the read (the route's body limit is the hard stop).
async fn read_upload(mut multipart: Multipart) -> Result<ResourceUpload, FieldErrors> {
    let mut upload = ResourceUpload::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| FieldErrors::single("file", "could not be read; at most 2 MiB"))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|_| FieldErrors::single("file", "could not be read; at most 2 MiB"))?;
                upload.file = Some((file_name, bytes.to_vec()));
            }
            "kind" | "title" | "html" => {
                let text = field
                    .text()
                    .await
                    .map_err(|_| FieldErrors::single(&name, "could not be read"))?;
                match name.as_str() {
                    "kind" => upload.kind = text,
                    "title" => upload.title = text,
                    _ => upload.html = Some(text),
                }
            }
            _ => {}
        }
    }
    Ok(upload)
}

pub async fn admin_upload(
    State(app): State<App>,
    ctx: Ctx,
    request: axum::extract::Request,
) -> WebResult<Response> {
    // The policy first: the body is read only for an admin.
    ctx.authorize(Action::AdministerProgram)?;
    let multipart = match Multipart::from_request(request, &()).await {
        Ok(multipart) => multipart,
        Err(_) => {
            let errors = BTreeMap::from([(
                "file".to_owned(),
                "the form must be sent as multipart/form-data".to_owned(),
            )]);
            return admin_page(&app, &ctx, errors, BTreeMap::new()).await;
        }
    };
    let upload = match read_upload(multipart).await {
        Ok(upload) => upload,
        Err(errors) => return admin_page(&app, &ctx, errors.into_map(), BTreeMap::new()).await,
    };
    let form = BTreeMap::from([
        ("kind".to_owned(), upload.kind.clone()),
        ("title".to_owned(), upload.title.clone()),
        ("html".to_owned(), upload.html.clone().unwrap_or_default()),
    ]);
    match app.upload_resource(&ctx.who()?.actor_label(), upload).await {
        Ok(resource) => {
            let mut response = Redirect::to("/admin/resources").into_response();
            let message = format!("{} was added; partners can use it now.", resource.title);
            response.headers_mut().append(
                header::SET_COOKIE,
                flash_cookie("success", &message, ctx.https),
            );
            Ok(response)
        }
        Err(AppError::Invalid(errors)) => admin_page(&app, &ctx, errors.into_map(), form).await,
        Err(other) => Err(other.into()),
    }
}

pub async fn admin_archive(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<i64>,
) -> WebResult<Response> {
    ctx.authorize(Action::AdministerProgram)?;
    app.archive_resource(&ctx.who()?.actor_label(), id).await?;
    let mut response = Redirect::to("/admin/resources").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        flash_cookie("success", "The resource was archived.", ctx.https),
    );
    Ok(response)
}

#[derive(Debug, Deserialize, Default)]
pub struct CampaignChoice {
    campaign: Option<String>,
}

/// R-RES-1: the resources with snippets carrying the partner's chosen link.
pub async fn panel_list(
    State(app): State<App>,
    ctx: Ctx,
    Query(choice): Query<CampaignChoice>,
) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    let campaigns = app
        .store
        .list_campaigns(partner.id)
        .await
        .map_err(AppError::from)?;
    let selected = choice.campaign.unwrap_or_default();
    let campaign = campaigns.iter().find(|c| c.slug == selected);
    let link = app.referral_link(&partner.public_id, campaign);
    let resources = app
        .store
        .list_resources(false)
        .await
        .map_err(AppError::from)?;
    let page = PanelResourcesPage {
        layout: ctx.layout("Resources", panel_nav("/panel/resources")),
        resources: cards(&app, resources, &link),
        selected: campaign.map(|c| c.slug.clone()).unwrap_or_default(),
        campaigns,
        link,
    };
    Ok(render(&page))
}

/// A partner downloads an image: counted (R-RES-1), served as an attachment.
pub async fn panel_download(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<i64>,
) -> WebResult<Response> {
    let partner = ctx.partner()?.clone();
    let file = app
        .store
        .resource_file(id)
        .await
        .map_err(AppError::from)?
        .ok_or(WebError::NotFound)?;
    app.store
        .record_download(id, partner.id, app.now())
        .await
        .map_err(AppError::from)?;
    let disposition = format!("attachment; filename=\"{}\"", file.file_name);
    let mut response = file.data.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&file.content_type).map_err(|e| WebError::Internal(e.to_string()))?,
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(|e| WebError::Internal(e.to_string()))?,
    );
    Ok(response)
}

/// `GET /resources/{id}/{file}`: the public image partners embed. The type was
/// checked from the bytes at upload; `nosniff` and a no-script CSP keep it an image.
pub async fn public_file(
    State(app): State<App>,
    Path((id, _name)): Path<(i64, String)>,
) -> Response {
    match app.store.resource_file(id).await {
        Ok(Some(file)) => {
            let mut response = file.data.into_response();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&file.content_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            headers.insert(
                "cross-origin-resource-policy",
                HeaderValue::from_static("cross-origin"),
            );
            response
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => {
            tracing::error!(%err, "serving a resource");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
