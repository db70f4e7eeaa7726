//! The PayPal Payouts client against the PayPal stand-in, over real HTTP:
//! tokens, creating and polling batches, every item status, and the faults
//! that tempt a client to pay twice.

use std::time::Duration;

use partnerd_app::config::Secret;
use partnerd_app::paypal::{
    BatchStatus, ItemStatus, PayPalClient, PayPalConfig, PayPalError, PayPalWebhookEvent,
    PayoutItemRequest, Settlement, WebhookVerification, parse_webhook,
};
use partnerd_testkit::paypal::{Endpoint, Fault, ItemOutcome, PayPalStandIn};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// Short enough to keep the timeout tests quick, long enough for a loaded CI
/// machine to answer a healthy request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

async fn start() -> (PayPalStandIn, PayPalClient) {
    let paypal = PayPalStandIn::start().await.unwrap();
    paypal.set_hang(Duration::from_secs(3));
    let client = client_for(&paypal, paypal.client_secret());
    (paypal, client)
}

fn client_for(paypal: &PayPalStandIn, secret: &str) -> PayPalClient {
    let mut config = PayPalConfig::new(paypal.base_url(), paypal.client_id(), Secret::new(secret));
    config.timeout = CLIENT_TIMEOUT;
    config.email_subject = Some("Your partner payout".to_owned());
    PayPalClient::new(config).unwrap()
}

fn item(receiver: &str, amount_minor: i64, sender_item_id: &str) -> PayoutItemRequest {
    PayoutItemRequest {
        receiver_email: receiver.to_owned(),
        amount_minor,
        currency: "USD".to_owned(),
        sender_item_id: sender_item_id.to_owned(),
        note: Some("Commission, March".to_owned()),
    }
}

/// Creates a one-item batch for `receiver` and returns its item's status after a poll.
async fn pay_and_poll(client: &PayPalClient, receiver: &str, id: &str) -> ItemStatus {
    let created = client
        .create_batch(id, &[item(receiver, 5_000, id)])
        .await
        .unwrap();
    let batch = client.get_batch(&created.payout_batch_id).await.unwrap();
    let polled = client
        .get_item(&batch.items[0].payout_item_id)
        .await
        .unwrap();
    assert_eq!(polled.status, batch.items[0].status);
    polled.status
}

#[tokio::test]
async fn a_batch_is_created_pending_and_polled_to_success() {
    let (paypal, client) = start().await;
    let created = client
        .create_batch("wd_1", &[item("partner@example.com", 12_345, "wd_1")])
        .await
        .unwrap();
    assert_eq!(created.batch_status, BatchStatus::Pending);
    assert!(!created.replayed);

    let batch = client.get_batch(&created.payout_batch_id).await.unwrap();
    assert_eq!(batch.batch_status, BatchStatus::Success);
    assert_eq!(batch.sender_batch_id.as_deref(), Some("wd_1"));
    let paid = &batch.items[0];
    assert_eq!(paid.status, ItemStatus::Success);
    assert_eq!(paid.status.settlement(), Settlement::Paid);
    assert_eq!(paid.amount_minor, Some(12_345));
    assert_eq!(paid.currency.as_deref(), Some("USD"));
    assert_eq!(paid.sender_item_id.as_deref(), Some("wd_1"));
    assert!(paid.transaction_id.is_some());

    let item = client.get_item(&paid.payout_item_id).await.unwrap();
    assert_eq!(item.sender_batch_id.as_deref(), Some("wd_1"));
    assert_eq!(
        item.payout_batch_id.as_deref(),
        Some(created.payout_batch_id.as_str())
    );

    // What went over the wire: PayPal's decimal string, one batch, one payment.
    let batches = paypal.batches();
    assert_eq!(batches[0].items[0].value, "123.45");
    let counters = paypal.counters();
    assert_eq!(counters.batches_created, 1);
    assert_eq!(counters.items_paid, 1);
}

#[tokio::test]
async fn the_token_is_fetched_once_and_shared_by_concurrent_calls() {
    let (paypal, client) = start().await;
    let created = client
        .create_batch("wd_1", &[item("partner@example.com", 100, "wd_1")])
        .await
        .unwrap();
    let client = std::sync::Arc::new(client);
    let mut calls = Vec::new();
    for _ in 0..10 {
        let client = client.clone();
        let id = created.payout_batch_id.clone();
        calls.push(tokio::spawn(async move { client.get_batch(&id).await }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(paypal.counters().tokens_issued, 1);
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires() {
    let (paypal, client) = start().await;
    paypal.set_token_ttl(Duration::from_secs(1));
    let created = client
        .create_batch("wd_1", &[item("partner@example.com", 100, "wd_1")])
        .await
        .unwrap();
    // A one-second token is used for three quarters of a second at most.
    tokio::time::sleep(Duration::from_millis(800)).await;
    client.get_batch(&created.payout_batch_id).await.unwrap();
    let counters = paypal.counters();
    assert_eq!(counters.tokens_issued, 2);
    assert_eq!(counters.unauthorized, 0);
}

#[tokio::test]
async fn a_revoked_token_is_replaced_after_a_401_and_the_call_succeeds() {
    let (paypal, client) = start().await;
    let created = client
        .create_batch("wd_1", &[item("partner@example.com", 100, "wd_1")])
        .await
        .unwrap();
    paypal.expire_tokens();
    client.get_batch(&created.payout_batch_id).await.unwrap();
    let counters = paypal.counters();
    assert_eq!(counters.unauthorized, 1);
    assert_eq!(counters.tokens_issued, 2);
}

#[tokio::test]
async fn wrong_credentials_are_a_final_authentication_error() {
    let (paypal, _) = start().await;
    let client = client_for(&paypal, "not-the-secret");
    let error = client.get_batch("ABC").await.unwrap_err();
    assert!(
        matches!(error, PayPalError::Authentication { status: 401, ref name } if name == "invalid_client"),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_repeated_sender_batch_id_returns_the_existing_batch_and_pays_nothing_more() {
    let (paypal, client) = start().await;
    let items = [item("partner@example.com", 2_500, "wd_7")];
    let first = client.create_batch("wd_7", &items).await.unwrap();
    let second = client.create_batch("wd_7", &items).await.unwrap();
    assert!(second.replayed);
    assert_eq!(second.payout_batch_id, first.payout_batch_id);
    let counters = paypal.counters();
    assert_eq!(counters.batches_created, 1);
    assert_eq!(counters.duplicates_refused, 1);
    assert_eq!(counters.items_paid, 1);
}

#[tokio::test]
async fn a_create_that_times_out_unapplied_is_retried_with_the_same_id_and_pays_once() {
    let (paypal, client) = start().await;
    paypal.fail_next(Endpoint::CreateBatch, 1, Fault::Hang);
    let items = [item("partner@example.com", 2_500, "wd_1")];
    let error = client.create_batch("wd_1", &items).await.unwrap_err();
    assert_eq!(error, PayPalError::Timeout);
    assert!(error.is_retryable());
    assert_eq!(paypal.counters().batches_created, 0);

    let retried = client.create_batch("wd_1", &items).await.unwrap();
    assert!(!retried.replayed);
    assert_eq!(paypal.counters().batches_created, 1);
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_in_a_timeout_is_found_again_not_paid_twice() {
    let (paypal, client) = start().await;
    paypal.fail_next(Endpoint::CreateBatch, 1, Fault::AppliedThenHang);
    let items = [item("partner@example.com", 2_500, "wd_1")];
    let error = client.create_batch("wd_1", &items).await.unwrap_err();
    assert_eq!(error, PayPalError::Timeout);
    assert!(error.is_retryable());
    // PayPal did create it: the money is moving although we heard nothing.
    assert_eq!(paypal.counters().batches_created, 1);

    let retried = client.create_batch("wd_1", &items).await.unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.payout_batch_id, paypal.batches()[0].payout_batch_id);
    let counters = paypal.counters();
    assert_eq!(counters.batches_created, 1);
    assert_eq!(counters.items_paid, 1);
}

#[tokio::test]
async fn a_create_applied_then_answered_500_is_found_again_not_paid_twice() {
    let (paypal, client) = start().await;
    paypal.fail_next(Endpoint::CreateBatch, 1, Fault::AppliedThenServerError);
    let items = [item("partner@example.com", 2_500, "wd_1")];
    let error = client.create_batch("wd_1", &items).await.unwrap_err();
    assert!(
        matches!(error, PayPalError::Unavailable { status: 500, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    let retried = client.create_batch("wd_1", &items).await.unwrap();
    assert!(retried.replayed);
    assert_eq!(paypal.counters().batches_created, 1);
}

#[tokio::test]
async fn server_errors_are_retryable_and_the_retry_pays_once() {
    let (paypal, client) = start().await;
    paypal.fail_next(Endpoint::CreateBatch, 2, Fault::ServerError);
    let items = [item("partner@example.com", 2_500, "wd_1")];
    for _ in 0..2 {
        let error = client.create_batch("wd_1", &items).await.unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
        assert_eq!(error.name(), Some("INTERNAL_SERVER_ERROR"));
    }
    let created = client.create_batch("wd_1", &items).await.unwrap();
    assert!(!created.replayed);
    assert_eq!(paypal.counters().batches_created, 1);
}

#[tokio::test]
async fn polls_that_fail_are_retryable_too() {
    let (paypal, client) = start().await;
    let created = client
        .create_batch("wd_1", &[item("partner@example.com", 100, "wd_1")])
        .await
        .unwrap();
    paypal.fail_next(Endpoint::GetBatch, 1, Fault::Hang);
    paypal.fail_next(Endpoint::GetBatch, 1, Fault::ServerError);
    assert_eq!(
        client
            .get_batch(&created.payout_batch_id)
            .await
            .unwrap_err(),
        PayPalError::Timeout
    );
    assert!(
        client
            .get_batch(&created.payout_batch_id)
            .await
            .unwrap_err()
            .is_retryable()
    );
    assert_eq!(
        client
            .get_batch(&created.payout_batch_id)
            .await
            .unwrap()
            .batch_status,
        BatchStatus::Success
    );
}

#[tokio::test]
async fn a_token_endpoint_failure_is_retryable() {
    let (paypal, client) = start().await;
    paypal.fail_next(Endpoint::Token, 1, Fault::ServerError);
    let error = client.get_batch("ABC").await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn every_item_outcome_reads_back_with_its_settlement() {
    let (paypal, client) = start().await;
    let cases = [
        (ItemOutcome::Success, ItemStatus::Success, Settlement::Paid),
        (ItemOutcome::Failed, ItemStatus::Failed, Settlement::NotPaid),
        (
            ItemOutcome::Unclaimed,
            ItemStatus::Unclaimed,
            Settlement::InFlight,
        ),
        (
            ItemOutcome::Returned,
            ItemStatus::Returned,
            Settlement::NotPaid,
        ),
        (
            ItemOutcome::Blocked,
            ItemStatus::Blocked,
            Settlement::NotPaid,
        ),
        (
            ItemOutcome::Refunded,
            ItemStatus::Refunded,
            Settlement::NotPaid,
        ),
        (
            ItemOutcome::Reversed,
            ItemStatus::Reversed,
            Settlement::NotPaid,
        ),
        (
            ItemOutcome::OnHold,
            ItemStatus::OnHold,
            Settlement::InFlight,
        ),
        (
            ItemOutcome::Pending,
            ItemStatus::Pending,
            Settlement::InFlight,
        ),
    ];
    for (index, (outcome, status, settlement)) in cases.into_iter().enumerate() {
        let receiver = format!("partner{index}@example.com");
        paypal.set_outcome(&receiver, outcome);
        let polled = pay_and_poll(&client, &receiver, &format!("wd_{index}")).await;
        assert_eq!(polled, status, "{outcome:?}");
        assert_eq!(polled.settlement(), settlement, "{outcome:?}");
    }
    assert_eq!(paypal.counters().items_paid, 1);
}

#[tokio::test]
async fn a_failed_item_carries_paypals_error_name_and_a_batch_of_failures_is_denied() {
    let (paypal, client) = start().await;
    paypal.set_default_outcome(ItemOutcome::Failed);
    let created = client
        .create_batch("wd_1", &[item("partner@example.com", 100, "wd_1")])
        .await
        .unwrap();
    let batch = client.get_batch(&created.payout_batch_id).await.unwrap();
    assert_eq!(batch.batch_status, BatchStatus::Denied);
    assert_eq!(
        batch.items[0].error_name.as_deref(),
        Some("RECEIVER_ACCOUNT_INVALID")
    );
}

#[tokio::test]
async fn an_unclaimed_item_turns_returned_when_it_expires() {
    let (paypal, client) = start().await;
    paypal.set_outcome("nobody@example.com", ItemOutcome::UnclaimedThenReturned);
    let created = client
        .create_batch("wd_1", &[item("nobody@example.com", 100, "wd_1")])
        .await
        .unwrap();
    let batch = client.get_batch(&created.payout_batch_id).await.unwrap();
    let id = &batch.items[0].payout_item_id;
    assert_eq!(batch.items[0].status, ItemStatus::Unclaimed);
    assert_eq!(
        batch.items[0].error_name.as_deref(),
        Some("RECEIVER_UNREGISTERED")
    );

    paypal.expire_unclaimed();
    let returned = client.get_item(id).await.unwrap();
    assert_eq!(returned.status, ItemStatus::Returned);
    assert_eq!(returned.status.settlement(), Settlement::NotPaid);
}

#[tokio::test]
async fn a_paid_item_can_later_be_reversed() {
    let (paypal, client) = start().await;
    let created = client
        .create_batch("wd_1", &[item("partner@example.com", 100, "wd_1")])
        .await
        .unwrap();
    let batch = client.get_batch(&created.payout_batch_id).await.unwrap();
    let id = batch.items[0].payout_item_id.clone();
    assert!(paypal.set_item_status(&id, "REVERSED"));
    assert_eq!(
        client.get_item(&id).await.unwrap().status,
        ItemStatus::Reversed
    );
    assert_eq!(paypal.counters().items_paid, 0);
}

#[tokio::test]
async fn items_stay_pending_until_paypal_processes_them() {
    let (paypal, client) = start().await;
    paypal.set_auto_settle(false);
    let created = client
        .create_batch("wd_1", &[item("partner@example.com", 100, "wd_1")])
        .await
        .unwrap();
    let before = client.get_batch(&created.payout_batch_id).await.unwrap();
    assert_eq!(before.batch_status, BatchStatus::Pending);
    assert!(!before.batch_status.is_final());
    assert_eq!(before.items[0].status, ItemStatus::Pending);
    paypal.settle();
    let after = client.get_batch(&created.payout_batch_id).await.unwrap();
    assert_eq!(after.batch_status, BatchStatus::Success);
    assert!(after.batch_status.is_final());
    assert_eq!(after.items[0].status, ItemStatus::Success);
}

#[tokio::test]
async fn unknown_batches_and_items_are_not_found() {
    let (_paypal, client) = start().await;
    let error = client.get_batch("NOSUCHBATCH").await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    assert!(!error.is_retryable());
    assert!(
        client
            .get_item("NOSUCHITEM")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn requests_paypal_refuses_are_final_with_paypals_reason() {
    let (paypal, client) = start().await;
    let error = client
        .create_batch("wd_1", &[item("not-an-address", 100, "wd_1")])
        .await
        .unwrap_err();
    assert!(
        matches!(error, PayPalError::Refused { status: 400, ref name, ref issues, .. }
            if name == "VALIDATION_ERROR" && issues[0].starts_with("items[0].receiver")),
        "{error:?}"
    );
    assert!(!error.is_retryable());

    // An amount PayPal cannot express never leaves partnerd.
    let mut huf = item("partner@example.com", 150_050, "wd_2");
    huf.currency = "HUF".to_owned();
    assert!(matches!(
        client.create_batch("wd_2", &[huf]).await,
        Err(PayPalError::InvalidInput(_))
    ));
    assert_eq!(paypal.counters().create_calls, 1);
}

fn header_map(webhook: &partnerd_testkit::paypal::Webhook) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &webhook.headers {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

#[tokio::test]
async fn a_genuine_item_webhook_verifies_and_parses_to_its_item() {
    let (paypal, client) = start().await;
    paypal.set_outcome("nobody@example.com", ItemOutcome::Unclaimed);
    let created = client
        .create_batch("wd_9", &[item("nobody@example.com", 100, "wd_9")])
        .await
        .unwrap();
    let batch = client.get_batch(&created.payout_batch_id).await.unwrap();
    let id = &batch.items[0].payout_item_id;

    let webhook = paypal.item_webhook(id, "WH1ID").unwrap();
    let headers = header_map(&webhook);
    assert_eq!(
        client
            .verify_webhook(&headers, webhook.body.as_bytes(), "WH1ID")
            .await
            .unwrap(),
        WebhookVerification::Success
    );
    let PayPalWebhookEvent::PayoutItem(event) = parse_webhook(webhook.body.as_bytes()).unwrap()
    else {
        panic!("not an item event")
    };
    assert_eq!(event.event_type, "PAYMENT.PAYOUTS-ITEM.UNCLAIMED");
    assert_eq!(&event.payout_item_id, id);
    assert_eq!(event.sender_batch_id.as_deref(), Some("wd_9"));
    assert_eq!(event.status, ItemStatus::Unclaimed);
}

#[tokio::test]
async fn an_altered_or_misdirected_webhook_fails_verification() {
    let (paypal, client) = start().await;
    let created = client
        .create_batch("wd_1", &[item("partner@example.com", 100, "wd_1")])
        .await
        .unwrap();
    let batch = client.get_batch(&created.payout_batch_id).await.unwrap();
    let webhook = paypal
        .item_webhook(&batch.items[0].payout_item_id, "WH1ID")
        .unwrap();
    let headers = header_map(&webhook);

    let altered = webhook.body.replace("SUCCESS", "RETURNED");
    assert_eq!(
        client
            .verify_webhook(&headers, altered.as_bytes(), "WH1ID")
            .await
            .unwrap(),
        WebhookVerification::Failure
    );
    assert_eq!(
        client
            .verify_webhook(&headers, webhook.body.as_bytes(), "OTHERWEBHOOK")
            .await
            .unwrap(),
        WebhookVerification::Failure
    );
    // Without PayPal's headers PayPal is not even asked.
    let calls = paypal.counters().verify_calls;
    assert_eq!(
        client
            .verify_webhook(&HeaderMap::new(), webhook.body.as_bytes(), "WH1ID")
            .await
            .unwrap(),
        WebhookVerification::Failure
    );
    assert_eq!(paypal.counters().verify_calls, calls);
}

#[tokio::test]
async fn webhook_verification_answers_can_be_forced_and_failures_retried() {
    use partnerd_testkit::paypal::WebhookVerification as Forced;
    let (paypal, client) = start().await;
    let created = client
        .create_batch("wd_1", &[item("partner@example.com", 100, "wd_1")])
        .await
        .unwrap();
    let batch = client.get_batch(&created.payout_batch_id).await.unwrap();
    let webhook = paypal
        .item_webhook(&batch.items[0].payout_item_id, "WH1ID")
        .unwrap();
    let headers = header_map(&webhook);
    paypal.set_webhook_verification(Forced::AlwaysFailure);
    assert_eq!(
        client
            .verify_webhook(&headers, webhook.body.as_bytes(), "WH1ID")
            .await
            .unwrap(),
        WebhookVerification::Failure
    );
    paypal.fail_next(Endpoint::VerifyWebhook, 1, Fault::ServerError);
    assert!(
        client
            .verify_webhook(&headers, webhook.body.as_bytes(), "WH1ID")
            .await
            .unwrap_err()
            .is_retryable()
    );
}
