//! Marketing resources (R-RES-1).

use std::sync::Arc;

use partnerd_store::{NewResource, Store, StoreError};

use crate::fixtures::*;

fn banner(title: &str) -> NewResource {
    NewResource {
        kind: "banner".into(),
        title: title.into(),
        image: Some((
            "image/png".into(),
            vec![0x89, b'P', b'N', b'G', 1, 2, 3],
            "spring.png".into(),
            728,
            90,
        )),
        html: None,
        created_at: at(1),
    }
}

conformance!(
    resources_keep_their_bytes_count_downloads_and_archive,
    |store: Arc<dyn Store>| async move {
        let partner = add_partner(&*store, "ann", at(1)).await;
        let image = store
            .create_resource(
                banner("Spring banner"),
                audit("resource.create", "resource"),
            )
            .await
            .unwrap();
        assert_eq!(
            (image.width, image.height, image.downloads),
            (Some(728), Some(90), 0)
        );
        let widget = NewResource {
            kind: "widget".into(),
            title: "Chat badge".into(),
            image: None,
            html: Some("<a href=\"{{link}}\">Chat</a>".into()),
            created_at: at(2),
        };
        let widget = store
            .create_resource(widget, audit("resource.create", "resource"))
            .await
            .unwrap();
        assert_eq!(last_audit(&*store).await.action, "resource.create");

        let file = store
            .resource_file(image.id)
            .await
            .unwrap()
            .expect("the image's bytes");
        assert_eq!(
            (file.content_type.as_str(), file.file_name.as_str()),
            ("image/png", "spring.png")
        );
        assert_eq!(file.data, vec![0x89, b'P', b'N', b'G', 1, 2, 3]);
        assert!(
            store.resource_file(widget.id).await.unwrap().is_none(),
            "widgets have no file"
        );

        store
            .record_download(image.id, partner.id, at(3))
            .await
            .unwrap();
        store
            .record_download(image.id, partner.id, at(4))
            .await
            .unwrap();
        let listed = store.list_resources(false).await.unwrap();
        assert_eq!(
            listed.iter().map(|r| r.title.as_str()).collect::<Vec<_>>(),
            vec!["Chat badge", "Spring banner"]
        );
        assert_eq!(listed[1].downloads, 2);

        store
            .archive_resource(image.id, audit("resource.archive", "resource"), at(5))
            .await
            .unwrap();
        assert_eq!(store.list_resources(false).await.unwrap().len(), 1);
        assert_eq!(store.list_resources(true).await.unwrap().len(), 2);
        assert!(
            store.resource_file(image.id).await.unwrap().is_none(),
            "archived images are no longer served"
        );
        assert!(matches!(
            store
                .archive_resource(image.id, audit("resource.archive", "resource"), at(6))
                .await,
            Err(StoreError::NotFound)
        ));
    }
);

conformance!(
    a_widget_without_html_or_an_image_with_html_is_refused_by_the_schema,
    |store: Arc<dyn Store>| async move {
        let mut bad = banner("Broken");
        bad.kind = "widget".into();
        assert!(
            store
                .create_resource(bad, audit("resource.create", "resource"))
                .await
                .is_err()
        );
        assert!(
            store.list_resources(true).await.unwrap().is_empty(),
            "nothing was written"
        );
    }
);
