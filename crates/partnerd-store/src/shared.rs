//! The statements both engines share, written once.
//!
//! `shared_store!` implements [`Store`](crate::Store) for a backend type that
//! has a `pool` field and provides the few inherent methods that really differ
//! per engine: `write()` (how a write transaction begins), `claim_jobs_sql()`,
//! `due_schedules_sql()` and `backup()`. A macro rather than generic code because
//! sqlx's generic bounds over `Database` would drown every statement in `where`
//! clauses; the macro keeps each statement as plain text in one place.

use partnerd_domain::Timestamp;

/// The first run time after `now` on the grid `next_run_at + k × interval`, so a
/// schedule that was down for a while runs once, not once per missed period.
pub(crate) fn next_on_grid(next_run_at: i64, interval_seconds: i64, now: Timestamp) -> i64 {
    let step = interval_seconds * 1000;
    let missed = (now.millis() - next_run_at).max(0) / step + 1;
    next_run_at + missed * step
}

/// Turns a unique-constraint failure into a conflict on `field`.
pub(crate) fn on_unique(err: sqlx::Error, field: &'static str) -> crate::StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            crate::StoreError::Conflict { field }
        }
        _ => crate::StoreError::Database(err),
    }
}

/// The report's counters by row over `range`, for the caller's `group by`: the
/// hours still in `report_rollups`, and of the settled ones the whole UTC days from
/// `report_days_settled` and only the hours at the ends from
/// `report_rollups_settled` (see [`report_row_binds`]). Binds `$1`/`$2` (the
/// hours), `$3`/`$4` (where the whole days begin and end, in hours), `$5`/`$6` (the
/// same in days) and `$7` (the partner, when there is one).
pub(crate) fn report_row_counters(range: crate::ReportRange) -> String {
    let partner = if range.partner_id.is_some() {
        "partner_id = $7 and "
    } else {
        ""
    };
    let part = |table: &str, filter: &str| {
        format!(
            "select campaign_id, utm_term, clicks, bot_clicks, unique_visitors, signups \
             from {table} where {partner}{filter}"
        )
    };
    [
        part("report_rollups", "hour >= $1 and hour < $2"),
        part("report_rollups_settled", "hour >= $1 and hour < $3"),
        part("report_days_settled", "day >= $5 and day < $6"),
        part("report_rollups_settled", "hour >= $4 and hour < $2"),
    ]
    .join(" union all ")
}

/// `$3`..`$6` of [`report_row_counters`]: the whole UTC days inside the range,
/// as hours and as days; with none, the hours cover it all and the days nothing.
pub(crate) fn report_row_binds(range: crate::ReportRange) -> [i64; 4] {
    let first_day = range.from_hour.div_euclid(24) + i64::from(range.from_hour.rem_euclid(24) != 0);
    let end_day = range.to_hour.div_euclid(24);
    if first_day < end_day {
        [first_day * 24, end_day * 24, first_day, end_day]
    } else {
        [range.to_hour, range.to_hour, first_day, first_day]
    }
}

/// `Store::report_hours` on either engine: one query per table, merged here, so
/// each reads its key in order and groups as it goes, with no sort of a year of
/// hours. SQLite runs it on a rusqlite connection of its own: through sqlx, each
/// of a year's 8,760 rows cost ~5 µs on the way from its worker thread, most of
/// the 365-day report's time.
pub(crate) async fn report_hours_in<D: crate::money_sql::BillingDb>(
    db: &mut D,
    range: crate::ReportRange,
) -> crate::StoreResult<Vec<crate::ReportHour>> {
    use crate::money_sql::args;
    let partner = if range.partner_id.is_some() {
        "partner_id = $3 and "
    } else {
        ""
    };
    let mut parts = Vec::with_capacity(2);
    for table in ["report_rollups", "report_rollups_settled"] {
        let sql = format!(
            "select hour, cast(sum(clicks) as bigint), cast(sum(bot_clicks) as bigint), \
               cast(sum(unique_visitors) as bigint), cast(sum(signups) as bigint) \
             from {table} where {partner}hour >= $1 and hour < $2 \
             group by hour order by hour"
        );
        let rows: Vec<(i64, i64, i64, i64, i64)> = match range.partner_id {
            Some(partner_id) => {
                db.fetch_all(&sql, &args![range.from_hour, range.to_hour, partner_id])
                    .await?
            }
            None => {
                db.fetch_all(&sql, &args![range.from_hour, range.to_hour])
                    .await?
            }
        };
        parts.push(
            rows.into_iter()
                .map(
                    |(hour, clicks, bot_clicks, unique_visitors, signups)| crate::ReportHour {
                        hour,
                        clicks,
                        bot_clicks,
                        unique_visitors,
                        signups,
                    },
                )
                .collect::<Vec<_>>(),
        );
    }
    let settled = parts.pop().unwrap_or_default();
    let hot = parts.pop().unwrap_or_default();
    Ok(merge_report_hours(hot, settled))
}

/// Adds the settled hours to the hot ones, both sorted by hour, into one sorted
/// list with one entry per hour.
pub(crate) fn merge_report_hours(
    hot: Vec<crate::ReportHour>,
    settled: Vec<crate::ReportHour>,
) -> Vec<crate::ReportHour> {
    let mut merged: Vec<crate::ReportHour> = Vec::with_capacity(hot.len() + settled.len());
    let mut hot = hot.into_iter().peekable();
    for hour in settled {
        while let Some(earlier) = hot.next_if(|h| h.hour < hour.hour) {
            merged.push(earlier);
        }
        match hot.next_if(|h| h.hour == hour.hour) {
            Some(same) => merged.push(crate::ReportHour {
                hour: hour.hour,
                clicks: hour.clicks + same.clicks,
                bot_clicks: hour.bot_clicks + same.bot_clicks,
                unique_visitors: hour.unique_visitors + same.unique_visitors,
                signups: hour.signups + same.signups,
            }),
            None => merged.push(hour),
        }
    }
    merged.extend(hot);
    merged
}

pub(crate) const PARTNER_COLUMNS: &str = "id, public_id, email, name, company, website, password_hash, manager_id, status, terms_version, time_zone, created_at, removed_at, removal_kind, removal_reason";

macro_rules! shared_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn insert_audit(
                tx: &mut sqlx::Transaction<'_, $db>,
                audit: &$crate::NewAudit,
            ) -> $crate::StoreResult<()> {
                sqlx::query(
                    "insert into audit_log (at, actor, action, object, before, after) values ($1, $2, $3, $4, $5, $6)",
                )
                .bind(audit.at.millis())
                .bind(&audit.actor)
                .bind(&audit.action)
                .bind(&audit.object)
                .bind(audit.before.as_ref().map(|v| v.to_string()))
                .bind(audit.after.as_ref().map(|v| v.to_string()))
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn insert_email(
                tx: &mut sqlx::Transaction<'_, $db>,
                email: &$crate::NewEmail,
            ) -> $crate::StoreResult<()> {
                let (id,): (i64,) = sqlx::query_as(
                    "insert into outbox (to_address, subject, body, status, created_at, partner_id) values ($1, $2, $3, $4, $5, $6) returning id",
                )
                .bind(&email.to)
                .bind(&email.subject)
                .bind(&email.body)
                .bind(if email.send { "pending" } else { "kept" })
                .bind(email.created_at.millis())
                .bind(email.partner_id)
                .fetch_one(&mut **tx)
                .await?;
                if email.send {
                    let job = $crate::NewJob {
                        kind: "send_email".into(),
                        payload: serde_json::json!({ "outbox_id": id }),
                        run_at: email.created_at,
                        max_attempts: 8,
                    };
                    Self::insert_job(tx, &job).await?;
                }
                Ok(())
            }

            async fn insert_job(
                tx: &mut sqlx::Transaction<'_, $db>,
                job: &$crate::NewJob,
            ) -> $crate::StoreResult<i64> {
                let (id,): (i64,) = sqlx::query_as(
                    "insert into jobs (kind, payload, status, run_at, max_attempts, created_at) values ($1, $2, 'queued', $3, $4, $3) returning id",
                )
                .bind(&job.kind)
                .bind(job.payload.to_string())
                .bind(job.run_at.millis())
                .bind(job.max_attempts)
                .fetch_one(&mut **tx)
                .await?;
                Ok(id)
            }

            async fn partner_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: i64,
            ) -> $crate::StoreResult<$crate::Partner> {
                let sql = format!("select {} from partners where id = $1", $crate::shared::PARTNER_COLUMNS);
                sqlx::query_as(&sql)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or($crate::StoreError::NotFound)
            }

            async fn delete_sessions_of(
                tx: &mut sqlx::Transaction<'_, $db>,
                subject: $crate::Subject,
                keep_token_hash: Option<&str>,
            ) -> $crate::StoreResult<()> {
                sqlx::query(
                    "delete from sessions where subject_kind = $1 and subject_id = $2 and token_hash <> coalesce($3, '')",
                )
                .bind(subject.kind())
                .bind(subject.id())
                .bind(keep_token_hash)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn manager_loads<'e, E>(executor: E) -> $crate::StoreResult<Vec<partnerd_domain::assignment::ManagerLoad>>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let rows: Vec<(i64, String, i64)> = sqlx::query_as(
                    "select s.id, s.name, count(p.id) from staff s \
                     left join partners p on p.manager_id = s.id and p.status = 'active' \
                     where s.role = 'manager' group by s.id, s.name order by s.name, s.id",
                )
                .fetch_all(executor)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(staff_id, name, assigned_partners)| partnerd_domain::assignment::ManagerLoad {
                        staff_id,
                        name,
                        assigned_partners,
                    })
                    .collect())
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> $crate::Backend {
                Self::BACKEND
            }

            async fn migrate(&self) -> $crate::StoreResult<()> {
                MIGRATOR.run(&self.pool).await?;
                Ok(())
            }

            async fn applied_migrations(&self) -> $crate::StoreResult<Vec<i64>> {
                let rows: Vec<(i64,)> =
                    sqlx::query_as("select version from _sqlx_migrations where success order by version")
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn ping(&self) -> $crate::StoreResult<()> {
                sqlx::query("select 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn load_settings(&self) -> $crate::StoreResult<partnerd_domain::ProgramSettings> {
                let row: Option<(String,)> = sqlx::query_as("select document from program_settings where id = 1")
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    None => Ok(partnerd_domain::ProgramSettings::default()),
                    Some((doc,)) => serde_json::from_str(&doc)
                        .map_err(|e| $crate::StoreError::Corrupt(format!("program settings: {e}"))),
                }
            }

            async fn save_settings(
                &self,
                settings: &partnerd_domain::ProgramSettings,
                audit: $crate::NewAudit,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                let doc = serde_json::to_string(settings).map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?;
                let mut tx = self.write().await?;
                sqlx::query(
                    "insert into program_settings (id, document, updated_at) values (1, $1, $2) \
                     on conflict (id) do update set document = excluded.document, updated_at = excluded.updated_at",
                )
                .bind(doc)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn current_terms(&self) -> $crate::StoreResult<Option<$crate::Terms>> {
                Ok(sqlx::query_as("select id, version, body, created_at from terms_versions order by version desc limit 1")
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_terms(&self) -> $crate::StoreResult<Vec<$crate::Terms>> {
                Ok(sqlx::query_as("select id, version, body, created_at from terms_versions order by version desc")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn publish_terms(
                &self,
                body: &str,
                audit: $crate::NewAudit,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::Terms> {
                let mut tx = self.write().await?;
                let terms: $crate::Terms = sqlx::query_as(
                    "insert into terms_versions (version, body, created_at) \
                     select coalesce(max(version), 0) + 1, $1, $2 from terms_versions \
                     returning id, version, body, created_at",
                )
                .bind(body)
                .bind(now.millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| $crate::shared::on_unique(e, "version"))?;
                let audit = audit.before_after(None, Some(serde_json::json!({ "version": terms.version })));
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(terms)
            }

            async fn create_partner(
                &self,
                new: $crate::NewPartner,
                emails: &$crate::EmailsFor,
            ) -> $crate::StoreResult<$crate::Partner> {
                let mut tx = self.write().await?;
                Self::lock_manager_assignment(&mut tx).await?;
                let loads = Self::manager_loads(&mut *tx).await?;
                let manager = match partnerd_domain::assignment::pick_manager(&loads) {
                    Some(id) => Some(
                        sqlx::query_as::<_, $crate::Staff>(
                            "select id, email, name, role, password_hash, created_at from staff where id = $1",
                        )
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?,
                    ),
                    None => None,
                };
                let sql = format!(
                    "insert into partners (public_id, email, name, company, website, password_hash, manager_id, status, terms_version, created_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9) returning {}",
                    $crate::shared::PARTNER_COLUMNS
                );
                let partner: $crate::Partner = sqlx::query_as(&sql)
                    .bind(&new.public_id)
                    .bind(new.email.as_str())
                    .bind(&new.profile.name)
                    .bind(&new.profile.company)
                    .bind(&new.profile.website)
                    .bind(&new.password_hash)
                    .bind(manager.as_ref().map(|m| m.id))
                    .bind(new.terms_version)
                    .bind(new.created_at.millis())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| $crate::shared::on_unique(e, "email"))?;
                for email in emails(manager.as_ref(), &partner) {
                    Self::insert_email(&mut tx, &email).await?;
                }
                let audit = new.audit.clone().before_after(
                    None,
                    Some(serde_json::json!({ "partner": partner.public_id, "manager_id": partner.manager_id })),
                );
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(partner)
            }

            async fn get_partner(&self, id: i64) -> $crate::StoreResult<$crate::Partner> {
                let sql = format!("select {} from partners where id = $1", $crate::shared::PARTNER_COLUMNS);
                sqlx::query_as(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or($crate::StoreError::NotFound)
            }

            async fn find_partner_by_email(
                &self,
                email: &partnerd_domain::Email,
            ) -> $crate::StoreResult<Option<$crate::Partner>> {
                let sql = format!("select {} from partners where email = $1", $crate::shared::PARTNER_COLUMNS);
                Ok(sqlx::query_as(&sql).bind(email.as_str()).fetch_optional(&self.pool).await?)
            }

            async fn find_partner_by_public_id(&self, public_id: &str) -> $crate::StoreResult<Option<$crate::Partner>> {
                let sql = format!("select {} from partners where public_id = $1", $crate::shared::PARTNER_COLUMNS);
                Ok(sqlx::query_as(&sql).bind(public_id).fetch_optional(&self.pool).await?)
            }

            async fn list_partners(
                &self,
                query: &$crate::PartnerQuery,
            ) -> $crate::StoreResult<$crate::Page<$crate::Partner>> {
                // `\` escapes LIKE's wildcards on both engines (PostgreSQL's default,
                // SQLite's only with the ESCAPE clause), so a search is taken literally.
                let search = query.search.as_ref().map(|s| {
                    let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    format!("%{escaped}%")
                });
                let filter = "where ($1 is null or manager_id = $1) \
                              and ($2 is null or lower(name) like $2 escape '\\' or lower(coalesce(email, '')) like $2 escape '\\' \
                                   or lower(coalesce(company, '')) like $2 escape '\\') \
                              and ($3 = 1 or status = 'active')";
                let sql = format!(
                    "select {} from partners {filter} order by created_at desc, id desc limit $4 offset $5",
                    $crate::shared::PARTNER_COLUMNS
                );
                let include_removed: i64 = if query.include_removed { 1 } else { 0 };
                let items = sqlx::query_as(&sql)
                    .bind(query.manager_id)
                    .bind(&search)
                    .bind(include_removed)
                    .bind(query.limit.clamp(1, 500))
                    .bind(query.offset.max(0))
                    .fetch_all(&self.pool)
                    .await?;
                let count_sql = format!("select count(*) from partners {filter}");
                let (total,): (i64,) = sqlx::query_as(&count_sql)
                    .bind(query.manager_id)
                    .bind(&search)
                    .bind(include_removed)
                    .fetch_one(&self.pool)
                    .await?;
                Ok($crate::Page { items, total })
            }

            async fn update_partner_profile(
                &self,
                id: i64,
                update: &$crate::PartnerUpdate,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<$crate::Partner> {
                let mut tx = self.write().await?;
                let before = Self::partner_in(&mut tx, id).await?;
                if before.is_removed() {
                    return Err($crate::StoreError::Invalid("the partner was removed"));
                }
                sqlx::query("update partners set name = $1, company = $2, website = $3, time_zone = $4 where id = $5")
                    .bind(&update.profile.name)
                    .bind(&update.profile.company)
                    .bind(&update.profile.website)
                    .bind(&update.time_zone)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let after = Self::partner_in(&mut tx, id).await?;
                // Which fields changed, not their values: the audit log is append-only and
                // must not keep personal data that removal has to erase (R-ACC-3).
                let changed: Vec<&str> = [
                    ("name", before.name != after.name),
                    ("company", before.company != after.company),
                    ("website", before.website != after.website),
                    ("time_zone", before.time_zone != after.time_zone),
                ]
                .into_iter()
                .filter_map(|(field, differs)| differs.then_some(field))
                .collect();
                let audit = audit.before_after(None, Some(serde_json::json!({ "changed": changed })));
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn change_partner_email(
                &self,
                id: i64,
                email: &partnerd_domain::Email,
                notice: Option<$crate::NewEmail>,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                let before = Self::partner_in(&mut tx, id).await?;
                if before.is_removed() {
                    return Err($crate::StoreError::Invalid("the partner was removed"));
                }
                sqlx::query("update partners set email = $1 where id = $2")
                    .bind(email.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| $crate::shared::on_unique(e, "email"))?;
                if let Some(notice) = &notice {
                    Self::insert_email(&mut tx, notice).await?;
                }
                // The addresses themselves stay out of the append-only log (R-ACC-3).
                let audit = audit.before_after(None, Some(serde_json::json!({ "changed": ["email"] })));
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_password(
                &self,
                subject: $crate::Subject,
                password_hash: &str,
                keep_session: Option<&str>,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                let sql = match subject {
                    $crate::Subject::Partner(_) => "update partners set password_hash = $1 where id = $2 and status = 'active'",
                    $crate::Subject::Staff(_) => "update staff set password_hash = $1 where id = $2",
                };
                let done = sqlx::query(sql).bind(password_hash).bind(subject.id()).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Self::delete_sessions_of(&mut tx, subject, keep_session).await?;
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn accept_terms(&self, partner_id: i64, version: i64, audit: $crate::NewAudit) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                let done = sqlx::query("update partners set terms_version = $1 where id = $2 and status = 'active'")
                    .bind(version)
                    .bind(partner_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                let audit = audit.before_after(None, Some(serde_json::json!({ "terms_version": version })));
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn remove_partner(
                &self,
                id: i64,
                removal: $crate::Removal,
                audit: $crate::NewAudit,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                let (kind, reason) = match &removal {
                    $crate::Removal::Requested => ("requested", None),
                    $crate::Removal::Violation { reason } => ("violation", Some(reason.as_str())),
                };
                let mut tx = self.write().await?;
                // R-ACC-3: removal waits for any payout in flight, and for a request an
                // admin has not decided yet (its money would have nowhere to go).
                let (open,): (i64,) = sqlx::query_as(
                    "select count(*) from withdrawals where partner_id = $1 and status in ('requested', 'approved')",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if open > 0 {
                    return Err($crate::StoreError::Invalid(
                        "a withdrawal of this partner is waiting for approval or on its way; removal waits until it is paid, failed or rejected",
                    ));
                }
                // R-ACC-3: personal data is erased; the row (and so the money records that
                // point at it) stays, anonymised.
                let done = sqlx::query(
                    "update partners set status = 'removed', email = null, name = 'Removed partner', company = null, \
                     website = null, password_hash = null, removed_at = $1, removal_kind = $2, removal_reason = $3 \
                     where id = $4 and status = 'active'",
                )
                .bind(now.millis())
                .bind(kind)
                .bind(reason)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Self::delete_sessions_of(&mut tx, $crate::Subject::Partner(id), None).await?;
                sqlx::query("delete from password_resets where subject_kind = 'partner' and subject_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                // R-ACC-3, R-PAY-4: the PayPal address and tax details go; payouts keep
                // their amounts, not the address they went to (none is on its way, above).
                sqlx::query("delete from payout_profiles where partner_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "update payout_items set receiver = 'erased' where partner_id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                // Emails about the partner are erased too; one not yet sent is never sent.
                sqlx::query(
                    "update outbox set to_address = 'erased', subject = '(erased)', \
                     body = '(erased when the partner was removed)', \
                     status = case when status = 'pending' then 'failed' else status end \
                     where partner_id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let audit = audit.before_after(
                    Some(serde_json::json!({ "status": "active" })),
                    Some(serde_json::json!({ "status": "removed", "kind": kind, "reason": reason })),
                );
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn reassign_manager(
                &self,
                partner_id: i64,
                manager_id: Option<i64>,
                emails: &[$crate::NewEmail],
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                let before = Self::partner_in(&mut tx, partner_id).await?;
                if before.is_removed() {
                    return Err($crate::StoreError::Invalid("the partner was removed"));
                }
                if let Some(manager_id) = manager_id {
                    let found: Option<(i64,)> = sqlx::query_as("select id from staff where id = $1 and role = 'manager'")
                        .bind(manager_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if found.is_none() {
                        return Err($crate::StoreError::Invalid("no such manager"));
                    }
                }
                sqlx::query("update partners set manager_id = $1 where id = $2")
                    .bind(manager_id)
                    .bind(partner_id)
                    .execute(&mut *tx)
                    .await?;
                for email in emails {
                    Self::insert_email(&mut tx, email).await?;
                }
                let audit = audit.before_after(
                    Some(serde_json::json!({ "manager_id": before.manager_id })),
                    Some(serde_json::json!({ "manager_id": manager_id })),
                );
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_staff(
                &self,
                new: $crate::NewStaff,
                emails: &$crate::EmailsFor,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<$crate::Staff> {
                let mut tx = self.write().await?;
                let staff: $crate::Staff = sqlx::query_as(
                    "insert into staff (email, name, role, password_hash, created_at) values ($1, $2, $3, $4, $5) \
                     returning id, email, name, role, password_hash, created_at",
                )
                .bind(new.email.as_str())
                .bind(&new.name)
                .bind(new.role.as_str())
                .bind(&new.password_hash)
                .bind(new.created_at.millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| $crate::shared::on_unique(e, "email"))?;
                let mut taken = 0;
                if new.role == partnerd_domain::StaffRole::Manager {
                    let (managers,): (i64,) = sqlx::query_as("select count(*) from staff where role = 'manager'")
                        .fetch_one(&mut *tx)
                        .await?;
                    // R-ACC-2: the first manager created takes the partners who had none.
                    if managers == 1 {
                        let sql = format!(
                            "update partners set manager_id = $1 where manager_id is null and status = 'active' returning {}",
                            $crate::shared::PARTNER_COLUMNS
                        );
                        let partners: Vec<$crate::Partner> = sqlx::query_as(&sql).bind(staff.id).fetch_all(&mut *tx).await?;
                        for partner in &partners {
                            for email in emails(Some(&staff), partner) {
                                Self::insert_email(&mut tx, &email).await?;
                            }
                        }
                        taken = partners.len();
                    }
                }
                let audit = audit.before_after(
                    None,
                    Some(serde_json::json!({ "email": staff.email, "role": staff.role, "partners_assigned": taken })),
                );
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(staff)
            }

            async fn get_staff(&self, id: i64) -> $crate::StoreResult<$crate::Staff> {
                sqlx::query_as("select id, email, name, role, password_hash, created_at from staff where id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or($crate::StoreError::NotFound)
            }

            async fn find_staff_by_email(&self, email: &partnerd_domain::Email) -> $crate::StoreResult<Option<$crate::Staff>> {
                Ok(sqlx::query_as("select id, email, name, role, password_hash, created_at from staff where email = $1")
                    .bind(email.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_managers(&self) -> $crate::StoreResult<Vec<partnerd_domain::assignment::ManagerLoad>> {
                Self::manager_loads(&self.pool).await
            }

            async fn list_staff(&self) -> $crate::StoreResult<Vec<$crate::Staff>> {
                Ok(sqlx::query_as("select id, email, name, role, password_hash, created_at from staff order by role, name, id")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn create_session(&self, session: $crate::NewSession) -> $crate::StoreResult<()> {
                sqlx::query(
                    "insert into sessions (token_hash, subject_kind, subject_id, csrf_token, created_at, expires_at, network) \
                     values ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&session.token_hash)
                .bind(session.subject.kind())
                .bind(session.subject.id())
                .bind(&session.csrf_token)
                .bind(session.created_at.millis())
                .bind(session.expires_at.millis())
                .bind(&session.network)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_session(
                &self,
                token_hash: &str,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Option<$crate::Session>> {
                let row: Option<(String, i64, String, i64, i64)> = sqlx::query_as(
                    "select subject_kind, subject_id, csrf_token, created_at, expires_at from sessions \
                     where token_hash = $1 and expires_at > $2",
                )
                .bind(token_hash)
                .bind(now.millis())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(|(kind, id, csrf_token, created_at, expires_at)| {
                    Some($crate::Session { subject: $crate::Subject::from_parts(&kind, id)?, csrf_token, created_at, expires_at })
                }))
            }

            async fn delete_session(&self, token_hash: &str) -> $crate::StoreResult<()> {
                sqlx::query("delete from sessions where token_hash = $1").bind(token_hash).execute(&self.pool).await?;
                Ok(())
            }

            async fn create_password_reset(
                &self,
                reset: $crate::NewPasswordReset,
                email: $crate::NewEmail,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                sqlx::query(
                    "insert into password_resets (token_hash, subject_kind, subject_id, created_at, expires_at) values ($1, $2, $3, $4, $5)",
                )
                .bind(&reset.token_hash)
                .bind(reset.subject.kind())
                .bind(reset.subject.id())
                .bind(reset.created_at.millis())
                .bind(reset.expires_at.millis())
                .execute(&mut *tx)
                .await?;
                Self::insert_email(&mut tx, &email).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn find_password_reset(
                &self,
                token_hash: &str,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Option<$crate::Subject>> {
                let row: Option<(String, i64)> = sqlx::query_as(
                    "select subject_kind, subject_id from password_resets where token_hash = $1 and used_at is null and expires_at > $2",
                )
                .bind(token_hash)
                .bind(now.millis())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(|(kind, id)| $crate::Subject::from_parts(&kind, id)))
            }

            async fn use_password_reset(
                &self,
                token_hash: &str,
                password_hash: &str,
                now: partnerd_domain::Timestamp,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<$crate::Subject> {
                let mut tx = self.write().await?;
                // Marking the link used first, conditionally, is what makes it single-use
                // even when two requests race with the same link.
                let row: Option<(String, i64)> = sqlx::query_as(
                    "update password_resets set used_at = $1 where token_hash = $2 and used_at is null and expires_at > $1 \
                     returning subject_kind, subject_id",
                )
                .bind(now.millis())
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(subject) = row.and_then(|(kind, id)| $crate::Subject::from_parts(&kind, id)) else {
                    return Err($crate::StoreError::Invalid("this reset link has expired or was already used"));
                };
                let sql = match subject {
                    $crate::Subject::Partner(_) => "update partners set password_hash = $1 where id = $2 and status = 'active'",
                    $crate::Subject::Staff(_) => "update staff set password_hash = $1 where id = $2",
                };
                let done = sqlx::query(sql).bind(password_hash).bind(subject.id()).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::Invalid("this reset link has expired or was already used"));
                }
                sqlx::query("update password_resets set used_at = $1 where subject_kind = $2 and subject_id = $3 and used_at is null")
                    .bind(now.millis())
                    .bind(subject.kind())
                    .bind(subject.id())
                    .execute(&mut *tx)
                    .await?;
                Self::delete_sessions_of(&mut tx, subject, None).await?;
                let mut audit = audit;
                audit.object = format!("{}:{}", subject.kind(), subject.id());
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(subject)
            }

            async fn create_api_key(&self, key: $crate::NewApiKey, audit: $crate::NewAudit) -> $crate::StoreResult<i64> {
                let mut tx = self.write().await?;
                let (id,): (i64,) = sqlx::query_as(
                    "insert into api_keys (name, key_hash, prefix, created_at) values ($1, $2, $3, $4) returning id",
                )
                .bind(&key.name)
                .bind(&key.key_hash)
                .bind(&key.prefix)
                .bind(key.created_at.millis())
                .fetch_one(&mut *tx)
                .await?;
                let audit = audit.before_after(None, Some(serde_json::json!({ "id": id, "name": key.name, "prefix": key.prefix })));
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn find_api_key(&self, key_hash: &str) -> $crate::StoreResult<Option<$crate::ApiKey>> {
                Ok(sqlx::query_as(
                    "select id, name, prefix, created_at, revoked_at from api_keys where key_hash = $1 and revoked_at is null",
                )
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_audit(&self, limit: i64, offset: i64) -> $crate::StoreResult<$crate::Page<$crate::AuditEntry>> {
                let items = sqlx::query_as(
                    "select id, at, actor, action, object, before, after from audit_log order by id desc limit $1 offset $2",
                )
                .bind(limit.clamp(1, 500))
                .bind(offset.max(0))
                .fetch_all(&self.pool)
                .await?;
                let (total,): (i64,) = sqlx::query_as("select count(*) from audit_log").fetch_one(&self.pool).await?;
                Ok($crate::Page { items, total })
            }

            async fn list_outbox(&self, limit: i64, offset: i64) -> $crate::StoreResult<$crate::Page<$crate::OutboxEmail>> {
                let items = sqlx::query_as(
                    "select id, to_address, subject, body, status, attempts, last_error, created_at, sent_at from outbox \
                     order by id desc limit $1 offset $2",
                )
                .bind(limit.clamp(1, 500))
                .bind(offset.max(0))
                .fetch_all(&self.pool)
                .await?;
                let (total,): (i64,) = sqlx::query_as("select count(*) from outbox").fetch_one(&self.pool).await?;
                Ok($crate::Page { items, total })
            }

            async fn get_outbox(&self, id: i64) -> $crate::StoreResult<$crate::OutboxEmail> {
                sqlx::query_as(
                    "select id, to_address, subject, body, status, attempts, last_error, created_at, sent_at from outbox where id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or($crate::StoreError::NotFound)
            }

            async fn mark_email(
                &self,
                id: i64,
                outcome: $crate::EmailOutcome,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                match outcome {
                    $crate::EmailOutcome::Sent => {
                        sqlx::query("update outbox set status = 'sent', sent_at = $1, attempts = attempts + 1 where id = $2")
                            .bind(now.millis())
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    $crate::EmailOutcome::Failed { error, final_failure } => {
                        sqlx::query("update outbox set status = $1, last_error = $2, attempts = attempts + 1 where id = $3")
                            .bind(if final_failure { "failed" } else { "pending" })
                            .bind(error)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn enqueue_job(&self, job: $crate::NewJob) -> $crate::StoreResult<i64> {
                let mut tx = self.write().await?;
                let id = Self::insert_job(&mut tx, &job).await?;
                tx.commit().await?;
                Ok(id)
            }

            async fn claim_jobs(
                &self,
                worker: &str,
                now: partnerd_domain::Timestamp,
                lease_seconds: i64,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::Job>> {
                let mut tx = self.write().await?;
                let jobs = sqlx::query_as(Self::CLAIM_JOBS_SQL)
                    .bind(worker)
                    .bind(now.plus_seconds(lease_seconds).millis())
                    .bind(now.millis())
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(jobs)
            }

            async fn finish_job(
                &self,
                id: i64,
                worker: &str,
                outcome: $crate::JobOutcome,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                let done = match outcome {
                    $crate::JobOutcome::Done => sqlx::query(
                        "update jobs set status = 'done', finished_at = $1, locked_by = null, locked_until = null \
                         where id = $2 and locked_by = $3 and status = 'running'",
                    )
                    .bind(now.millis())
                    .bind(id)
                    .bind(worker)
                    .execute(&mut *tx)
                    .await?,
                    $crate::JobOutcome::Failed { error, retry_at } => sqlx::query(
                        "update jobs set status = case when attempts >= max_attempts then 'failed' else 'queued' end, \
                         finished_at = case when attempts >= max_attempts then $1 else null end, \
                         run_at = $2, last_error = $3, locked_by = null, locked_until = null \
                         where id = $4 and locked_by = $5 and status = 'running'",
                    )
                    .bind(now.millis())
                    .bind(retry_at.millis())
                    .bind(error)
                    .bind(id)
                    .bind(worker)
                    .execute(&mut *tx)
                    .await?,
                };
                if done.rows_affected() == 0 {
                    // The lease ran out and another worker holds the job now.
                    return Err($crate::StoreError::Invalid("the job is no longer held by this worker"));
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_job(&self, id: i64) -> $crate::StoreResult<$crate::Job> {
                sqlx::query_as(
                    "select id, kind, payload, status, run_at, attempts, max_attempts, locked_by, last_error from jobs where id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or($crate::StoreError::NotFound)
            }

            async fn ensure_schedule(
                &self,
                name: &str,
                kind: &str,
                interval_seconds: i64,
                first_run: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                sqlx::query(
                    "insert into job_schedules (name, kind, interval_seconds, next_run_at) values ($1, $2, $3, $4) \
                     on conflict (name) do update set kind = excluded.kind, interval_seconds = excluded.interval_seconds",
                )
                .bind(name)
                .bind(kind)
                .bind(interval_seconds)
                .bind(first_run.millis())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn run_due_schedules(&self, now: partnerd_domain::Timestamp) -> $crate::StoreResult<usize> {
                let mut tx = self.write().await?;
                let due: Vec<(String, String, i64, i64)> = sqlx::query_as(Self::DUE_SCHEDULES_SQL)
                    .bind(now.millis())
                    .fetch_all(&mut *tx)
                    .await?;
                let mut enqueued = 0;
                for (name, kind, interval_seconds, next_run_at) in due {
                    let next = $crate::shared::next_on_grid(next_run_at, interval_seconds, now);
                    // Compare-and-set on the old time: only one node moves a schedule on.
                    let moved = sqlx::query("update job_schedules set next_run_at = $1 where name = $2 and next_run_at = $3")
                        .bind(next)
                        .bind(&name)
                        .bind(next_run_at)
                        .execute(&mut *tx)
                        .await?;
                    if moved.rows_affected() == 1 {
                        let job = $crate::NewJob {
                            kind,
                            payload: serde_json::json!({ "schedule": name, "due_at": next_run_at }),
                            run_at: now,
                            max_attempts: 3,
                        };
                        Self::insert_job(&mut tx, &job).await?;
                        enqueued += 1;
                    }
                }
                tx.commit().await?;
                Ok(enqueued)
            }

            async fn throttle_hit(&self, key: &str, now: partnerd_domain::Timestamp, window_seconds: i64) -> $crate::StoreResult<i64> {
                let mut tx = self.write().await?;
                let (hits,): (i64,) = sqlx::query_as(
                    "insert into throttle (key, window_start, hits) values ($1, $2, 1) \
                     on conflict (key) do update set \
                       hits = case when throttle.window_start <= $3 then 1 else throttle.hits + 1 end, \
                       window_start = case when throttle.window_start <= $3 then $2 else throttle.window_start end \
                     returning hits",
                )
                .bind(key)
                .bind(now.millis())
                .bind(now.minus_seconds(window_seconds).millis())
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(hits)
            }

            async fn throttle_count(&self, key: &str, now: partnerd_domain::Timestamp, window_seconds: i64) -> $crate::StoreResult<i64> {
                let row: Option<(i64,)> = sqlx::query_as("select hits from throttle where key = $1 and window_start > $2")
                    .bind(key)
                    .bind(now.minus_seconds(window_seconds).millis())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map_or(0, |r| r.0))
            }

            async fn throttle_clear(&self, key: &str) -> $crate::StoreResult<()> {
                sqlx::query("delete from throttle where key = $1").bind(key).execute(&self.pool).await?;
                Ok(())
            }

            async fn secret(&self, name: &str, candidate: &str) -> $crate::StoreResult<String> {
                let mut tx = self.write().await?;
                sqlx::query("insert into secrets (name, value) values ($1, $2) on conflict (name) do nothing")
                    .bind(name)
                    .bind(candidate)
                    .execute(&mut *tx)
                    .await?;
                let (value,): (String,) = sqlx::query_as("select value from secrets where name = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(value)
            }

            async fn create_campaign(&self, new: $crate::NewCampaign, audit: $crate::NewAudit) -> $crate::StoreResult<$crate::Campaign> {
                let mut tx = self.write().await?;
                let campaign: $crate::Campaign = sqlx::query_as(
                    "insert into campaigns (partner_id, name, slug, trial_days, discount_percent, custom, landing_url, created_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8) \
                     returning id, partner_id, name, slug, trial_days, discount_percent, custom, landing_url, created_at",
                )
                .bind(new.partner_id)
                .bind(&new.name)
                .bind(&new.slug)
                .bind(new.trial_days)
                .bind(new.discount_percent)
                .bind(&new.custom)
                .bind(&new.landing_url)
                .bind(new.created_at.millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| $crate::shared::on_unique(e, "name"))?;
                let audit = audit.before_after(None, Some(serde_json::json!({ "campaign": campaign.id, "slug": campaign.slug })));
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(campaign)
            }

            async fn list_campaigns(&self, partner_id: i64) -> $crate::StoreResult<Vec<$crate::Campaign>> {
                Ok(sqlx::query_as(
                    "select id, partner_id, name, slug, trial_days, discount_percent, custom, landing_url, created_at \
                     from campaigns where partner_id = $1 order by created_at desc, id desc",
                )
                .bind(partner_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn tracking_partner(&self, public_id: &str) -> $crate::StoreResult<Option<$crate::TrackingPartner>> {
                let sql = format!("select {} from partners where public_id = $1", $crate::shared::PARTNER_COLUMNS);
                let Some(partner): Option<$crate::Partner> = sqlx::query_as(&sql).bind(public_id).fetch_optional(&self.pool).await? else {
                    return Ok(None);
                };
                let campaigns = self.list_campaigns(partner.id).await?;
                Ok(Some($crate::TrackingPartner { partner, campaigns }))
            }

            async fn record_clicks(&self, clicks: &[$crate::NewClick]) -> $crate::StoreResult<()> {
                // Bulk inserts differ by engine (see each backend's `write_click_batch`).
                self.write_click_batch(clicks).await
            }

            fn blocking_click_writer(&self) -> Option<std::sync::Arc<dyn $crate::BlockingClickWriter>> {
                self.click_writer_for_a_thread()
            }

            async fn get_click(&self, id: i64) -> $crate::StoreResult<Option<$crate::Click>> {
                Ok(sqlx::query_as(
                    "select id, partner_id, campaign_id, at, utm_term, agent, network, own_session from clicks where id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn partner_used_network(&self, partner_id: i64, network: &str) -> $crate::StoreResult<bool> {
                let row: Option<(i64,)> = sqlx::query_as(
                    "select cast(1 as bigint) from sessions where subject_kind = 'partner' and subject_id = $1 and network = $2 limit 1",
                )
                .bind(partner_id)
                .bind(network)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn record_signup(&self, new: $crate::NewSignup) -> $crate::StoreResult<($crate::Signup, bool)> {
                const COLUMNS: &str = "id, customer_id, partner_id, referred_partner_id, campaign_id, click_id, utm_campaign, \
                                       utm_term, trial_days, discount_percent, reason, review, commission_rate, created_at";
                let mut tx = self.write().await?;
                let select = format!("select {COLUMNS} from signups where customer_id = $1");
                if let Some(existing) = sqlx::query_as::<_, $crate::Signup>(&select).bind(&new.customer_id).fetch_optional(&mut *tx).await? {
                    return Ok((existing, false));
                }
                let insert = format!(
                    "insert into signups (customer_id, partner_id, referred_partner_id, campaign_id, click_id, utm_campaign, utm_term, \
                     trial_days, discount_percent, reason, review, commission_rate, created_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) returning {COLUMNS}"
                );
                let inserted = sqlx::query_as::<_, $crate::Signup>(&insert)
                    .bind(&new.customer_id)
                    .bind(new.partner_id)
                    .bind(new.referred_partner_id)
                    .bind(new.campaign_id)
                    .bind(new.click_id)
                    .bind(&new.utm_campaign)
                    .bind(&new.utm_term)
                    .bind(new.trial_days)
                    .bind(new.discount_percent)
                    .bind(&new.reason)
                    .bind(i64::from(new.review))
                    .bind(new.commission_rate)
                    .bind(new.created_at.millis())
                    .fetch_one(&mut *tx)
                    .await;
                let signup = match inserted {
                    Ok(signup) => signup,
                    // Another node recorded the same customer a moment ago: answer as it did.
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                        drop(tx);
                        let existing = sqlx::query_as::<_, $crate::Signup>(&select).bind(&new.customer_id).fetch_one(&self.pool).await?;
                        return Ok((existing, false));
                    }
                    Err(e) => return Err(e.into()),
                };
                if let Some(partner_id) = signup.partner_id {
                    sqlx::query(
                        "insert into report_rollups (hour, partner_id, campaign_id, utm_term, signups) values ($1, $2, $3, $4, 1) \
                         on conflict (hour, partner_id, campaign_id, utm_term) do update set signups = report_rollups.signups + 1",
                    )
                    .bind(new.created_at.millis().div_euclid(3_600_000))
                    .bind(partner_id)
                    .bind(signup.campaign_id.unwrap_or(0))
                    .bind(signup.utm_term.clone().unwrap_or_default())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok((signup, true))
            }

            async fn find_signup(&self, customer_id: &str) -> $crate::StoreResult<Option<$crate::Signup>> {
                Ok(sqlx::query_as(
                    "select id, customer_id, partner_id, referred_partner_id, campaign_id, click_id, utm_campaign, utm_term, \
                     trial_days, discount_percent, reason, review, commission_rate, created_at from signups where customer_id = $1",
                )
                .bind(customer_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn report_rows(&self, range: $crate::ReportRange) -> $crate::StoreResult<Vec<$crate::ReportRow>> {
                // One partner's report must reach the partner-first keys: a
                // `$7 is null or partner_id = $7` filter would scan every partner's hours.
                let counters = $crate::shared::report_row_counters(range);
                let sql = format!(
                    "select coalesce(c.slug, 'default_link') as utm_campaign, r.utm_term, \
                       cast(sum(r.clicks) as bigint) as clicks, cast(sum(r.bot_clicks) as bigint) as bot_clicks, \
                       cast(sum(r.unique_visitors) as bigint) as unique_visitors, cast(sum(r.signups) as bigint) as signups \
                     from ({counters}) r left join campaigns c on c.id = r.campaign_id \
                     group by coalesce(c.slug, 'default_link'), r.utm_term \
                     order by clicks desc, utm_campaign, r.utm_term"
                );
                let mut query = sqlx::query_as(&sql).bind(range.from_hour).bind(range.to_hour);
                for bound in $crate::shared::report_row_binds(range) {
                    query = query.bind(bound);
                }
                if let Some(partner_id) = range.partner_id {
                    query = query.bind(partner_id);
                }
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn report_hours(&self, range: $crate::ReportRange) -> $crate::StoreResult<Vec<$crate::ReportHour>> {
                // Each engine runs `shared::report_hours_in` on a connection of its own kind.
                self.read_report_hours(range).await
            }

            async fn settle_report_hours(&self, before_hour: i64, max_hours: i64) -> $crate::StoreResult<u64> {
                let mut tx = self.write().await?;
                let (oldest,): (Option<i64>,) =
                    sqlx::query_as("select min(hour) from report_rollups where hour < $1")
                        .bind(before_hour)
                        .fetch_one(&mut *tx)
                        .await?;
                let Some(oldest) = oldest else {
                    return Ok(0);
                };
                let until = before_hour.min(oldest.saturating_add(max_hours.max(1)));
                let moved = Self::move_report_hours(&mut tx, oldest, until).await?;
                tx.commit().await?;
                Ok(moved)
            }

            async fn report_money_rows(&self, range: $crate::ReportRange) -> $crate::StoreResult<Vec<$crate::ReportMoneyRow>> {
                // Partner first, like report_rollups' index: one range per partner.
                let partner = if range.partner_id.is_some() { "m.partner_id = $3 and " } else { "" };
                let sql = format!(
                    "select coalesce(c.slug, 'default_link') as utm_campaign, m.utm_term, m.currency, \
                       cast(sum(m.customers) as bigint) as customers, cast(sum(m.revenue) as bigint) as revenue, \
                       cast(sum(m.commission) as bigint) as commission \
                     from report_money m left join campaigns c on c.id = m.campaign_id \
                     where {partner}m.hour >= $1 and m.hour < $2 \
                     group by coalesce(c.slug, 'default_link'), m.utm_term, m.currency \
                     order by utm_campaign, m.utm_term, m.currency"
                );
                let mut query = sqlx::query_as(&sql).bind(range.from_hour).bind(range.to_hour);
                if let Some(partner_id) = range.partner_id {
                    query = query.bind(partner_id);
                }
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn report_money_hours(&self, range: $crate::ReportRange) -> $crate::StoreResult<Vec<$crate::ReportMoneyHour>> {
                let partner = if range.partner_id.is_some() { "partner_id = $3 and " } else { "" };
                let sql = format!(
                    "select hour, currency, cast(sum(customers) as bigint) as customers, \
                       cast(sum(revenue) as bigint) as revenue, cast(sum(commission) as bigint) as commission \
                     from report_money where {partner}hour >= $1 and hour < $2 \
                     group by hour, currency order by hour"
                );
                let mut query = sqlx::query_as(&sql).bind(range.from_hour).bind(range.to_hour);
                if let Some(partner_id) = range.partner_id {
                    query = query.bind(partner_id);
                }
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn create_resource(&self, new: $crate::NewResource, audit: $crate::NewAudit) -> $crate::StoreResult<$crate::Resource> {
                let mut tx = self.write().await?;
                let (content_type, data, file_name, width, height) = match new.image {
                    Some((t, d, f, w, h)) => (Some(t), Some(d), Some(f), Some(w), Some(h)),
                    None => (None, None, None, None, None),
                };
                let (id,): (i64,) = sqlx::query_as(
                    "insert into resources (kind, title, content_type, data, file_name, width, height, html, created_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning id",
                )
                .bind(&new.kind)
                .bind(&new.title)
                .bind(content_type)
                .bind(data)
                .bind(file_name)
                .bind(width)
                .bind(height)
                .bind(&new.html)
                .bind(new.created_at.millis())
                .fetch_one(&mut *tx)
                .await?;
                let audit = audit.before_after(None, Some(serde_json::json!({ "resource": id, "kind": new.kind, "title": new.title })));
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                self.get_resource(id).await?.ok_or($crate::StoreError::NotFound)
            }

            async fn list_resources(&self, include_archived: bool) -> $crate::StoreResult<Vec<$crate::Resource>> {
                Ok(sqlx::query_as(
                    "select r.id, r.kind, r.title, r.content_type, r.file_name, r.width, r.height, r.html, r.created_at, r.archived_at, \
                       (select count(*) from resource_downloads d where d.resource_id = r.id) as downloads \
                     from resources r where ($1 = 1 or r.archived_at is null) order by r.created_at desc, r.id desc",
                )
                .bind(i64::from(include_archived))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn get_resource(&self, id: i64) -> $crate::StoreResult<Option<$crate::Resource>> {
                Ok(sqlx::query_as(
                    "select r.id, r.kind, r.title, r.content_type, r.file_name, r.width, r.height, r.html, r.created_at, r.archived_at, \
                       (select count(*) from resource_downloads d where d.resource_id = r.id) as downloads \
                     from resources r where r.id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn resource_file(&self, id: i64) -> $crate::StoreResult<Option<$crate::ResourceFile>> {
                Ok(sqlx::query_as(
                    "select content_type, file_name, data from resources where id = $1 and data is not null and archived_at is null",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn archive_resource(&self, id: i64, audit: $crate::NewAudit, now: partnerd_domain::Timestamp) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                let done = sqlx::query("update resources set archived_at = $1 where id = $2 and archived_at is null")
                    .bind(now.millis())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_download(&self, resource_id: i64, partner_id: i64, at: partnerd_domain::Timestamp) -> $crate::StoreResult<()> {
                sqlx::query("insert into resource_downloads (resource_id, partner_id, at) values ($1, $2, $3)")
                    .bind(resource_id)
                    .bind(partner_id)
                    .bind(at.millis())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn purge_expired(&self, now: partnerd_domain::Timestamp) -> $crate::StoreResult<u64> {
                let mut tx = self.write().await?;
                let mut purged = 0;
                for sql in [
                    "delete from sessions where expires_at <= $1",
                    "delete from password_resets where expires_at <= $1",
                    "delete from throttle where window_start <= $1 - 86400000",
                    // Unique visitors are per UTC day: only today's and yesterday's
                    // (for clicks committed just after midnight) are still looked up.
                    "delete from report_visitors where day < $1 / 86400000 - 1",
                ] {
                    purged += sqlx::query(sql).bind(now.millis()).execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(purged)
            }

            async fn backup_to(&self, path: &std::path::Path) -> $crate::StoreResult<()> {
                self.backup(path).await
            }
        }
    };
}

pub(crate) use shared_store;
