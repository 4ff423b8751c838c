// Recording rules shared by prometheus/alerts.yml and grafana/aivoice-dashboard.json.
//
// Names follow level:metric:operations. The level names the labels that identify a series
// (app_id, app_id_job_id, app_id_code); the scrape job (`job`) is always kept, so the
// dashboard's $job variable and Alertmanager's grouping keep working on recorded series.
//
// Replicas. Every process of a shard polls its accounts in full, so two replicas export the same
// series, differing only in their target labels `instance` and, on Kubernetes, `pod` (the
// mixin's replicaLabels; `(instance, pod)` below stands for them). Every rule
// reads the exporter's series replica by replica first (rate, increase, deriv, changes: each on
// its own series, so a counter reset of one restarted replica is one reset of one series), then
// keeps one value per series with `max without (instance, pod)` (the replica that has seen the
// most: the other one is behind by a poll, or restarting), and only then sums. The recorded
// series therefore carry no `instance`: with one process or with two replicas of every shard,
// each rule records the same series with the same values. Shards need nothing more: they hold
// different accounts, so their series never meet in a `max`. Gauges that move between label
// values (a task's status) are summed over that label within each replica before the `max`, so
// that two replicas seeing a change one poll apart do not count it twice.
//
// The exporter's task gauges only grow while a campaign runs, but they are gauges: rates use
// deriv() (a least-squares slope) clamped at 0, not rate(), which would read a drop (a task
// vanishing, or moving between statuses) as a counter reset.
//
// The API series carry `endpoint` (taskList, recordQuery). The app_id-level API rules sum over
// both endpoints (all of an app's requests); the app_id_endpoint-level ones keep it, for the
// error-ratio alert and the latency panel (the two endpoints have different latencies).
// getBalance is counted per account (`account`, no `app_id`): the app_id-level rules leave it
// out, and the balance alerts watch it (aivoice_account_balance_up). Each replica sends its own
// requests, so the API sees twice these rates; the rules give one replica's (the busier one's).
//
// The balance (balance.enabled): amounts in the account's currency, spend per second. Spend
// comes from the push's cost where it is set up (aivoice_call_cost_total, summed per account
// through aivoice_app_info; every replica that owns an app counts each of its pushes, as
// pushes are forwarded to them), else from the balance's own fall; a top-up only ever raises
// the balance, so resets() over its negation counts the top-ups.
//
// Call outcomes: answered = ANSWERED or TRANSFER_ARTIFICIAL; a line fault = FROM_PHONE_ERROR or
// SYSTEM_ERROR; CALL_LOSS = no free AI seat. Shares are over every result in the window, and
// absent while no call ended in it. Answer ratios use 1h (enough calls to mean something, and
// comparable with a week earlier); the fault shares use 15m, to alert while a campaign runs.
//
// Shards (--shard, --total-shards): every process exports aivoice_exporter_shard (its shard) and
// aivoice_exporter_total_shards. A process whose scrape fails drops out of them at once (its
// series go stale), so counting them counts the live processes of each shard. A process is told
// apart from the others by its replica labels (replicaLabels: `instance`, `pod`).
local lib = import '../lib/promql.libsonnet';

{
  prometheusRules+:: {
    local v = lib.vars($._config),
    groups+: [
      {
        name: 'aivoice.rules',
        rules: [
          // ---- per task -------------------------------------------------------------------------
          {
            record: 'app_id_job_id:aivoice_task_calls_completed:deriv5m',
            // completed calls per second over the last 5 minutes
            expr: |||
              max without (%(replicas)s) (clamp_min(deriv(aivoice_task_calls_completed%(sel)s[5m]), 0))
            ||| % v,
          },
          {
            record: 'app_id_job_id:aivoice_task_calls_completed:changes30m',
            // how many times the completed count moved in the last 30 minutes (0: no progress),
            // as the replica that saw it move most often counts
            expr: |||
              max without (%(replicas)s) (changes(aivoice_task_calls_completed%(sel)s[30m]))
            ||| % v,
          },
          {
            record: 'app_id_job_id:aivoice_task_calls_completed:stalled30m',
            // IN_PROCESS tasks (with their name) whose completed count has not moved for 30
            // minutes: known 30 minutes ago, calls left to make, and the app's data is fresh
            // (data frozen by failing polls is not a stall: some replica must poll it well).
            // Value: the completed count. Shared by the AivoiceTaskStalled alert and the
            // dashboard's last row.
            expr: |||
              (
                  max without (%(replicas)s) (aivoice_task_calls_completed%(sel)s)
                and on (%(job)s, app_id, job_id)
                  app_id_job_id:aivoice_task_calls_completed:changes30m == 0
                and on (%(job)s, app_id, job_id)
                  aivoice_task_calls_completed%(sel)s offset 30m
                unless on (%(job)s, app_id, job_id)
                  aivoice_task_calls_completed%(sel)s >= aivoice_task_calls%(sel)s
              )
              * on (%(job)s, app_id, job_id) group_left (name)
                max without (%(replicas)s) (aivoice_task_info{%(selAnd)sstatus="IN_PROCESS"})
              unless on (%(job)s, app_id)
                max without (%(replicas)s) (aivoice_up%(sel)s) == 0
            ||| % v,
          },
          {
            record: 'app_id_job_id:aivoice_task_progress:ratio',
            // completed / total, 0..1; tasks without calls have no progress series
            expr: |||
              max without (%(replicas)s) (aivoice_task_calls_completed%(sel)s / (aivoice_task_calls%(sel)s > 0))
            ||| % v,
          },
          {
            record: 'app_id_job_id:aivoice_task_time_to_finish_seconds:deriv5m',
            // calls left divided by the current completion rate; absent while the rate is 0
            expr: |||
              clamp_min(
                  max without (%(replicas)s) (aivoice_task_calls%(sel)s)
                - max without (%(replicas)s) (aivoice_task_calls_completed%(sel)s),
                0
              )
              / (app_id_job_id:aivoice_task_calls_completed:deriv5m > 0)
            ||| % v,
          },
          // ---- per app --------------------------------------------------------------------------
          {
            record: 'app_id:aivoice_calls_completed:sum',
            // per-app aggregate: present even with metrics.per_task off. Summed over statuses
            // within each replica first: a task that one replica already sees COMPLETED and the
            // other still IN_PROCESS is counted once.
            expr: |||
              sum by (%(job)s, app_id) (max without (%(replicas)s) (
                sum without (status) (aivoice_calls_completed%(sel)s)
              ))
            ||| % v,
          },
          {
            record: 'app_id:aivoice_calls_completed:deriv5m',
            // completed calls per second, per app; summed over statuses first so that a task
            // moving from IN_PROCESS to COMPLETED is not counted as progress
            expr: |||
              clamp_min(deriv(app_id:aivoice_calls_completed:sum[5m]), 0)
            ||| % v,
          },
          // ---- API requests, per app and endpoint ----------------------------------------------
          {
            record: 'app_id_endpoint:aivoice_api_requests:rate5m',
            expr: |||
              sum by (%(job)s, app_id, endpoint) (max without (%(replicas)s) (
                rate(aivoice_api_requests_total{%(selAnd)sapp_id!=""}[5m])
              ))
            ||| % v,
          },
          {
            record: 'app_id_endpoint:aivoice_api_errors:rate5m',
            expr: |||
              sum by (%(job)s, app_id, endpoint) (max without (%(replicas)s) (
                rate(aivoice_api_errors_total{%(selAnd)sapp_id!=""}[5m])
              ))
            ||| % v,
          },
          {
            record: 'app_id_endpoint:aivoice_api_errors:ratio_rate5m',
            // failed requests / requests of one endpoint, 0..1 (retries count on both sides);
            // absent while the endpoint is idle
            expr: |||
              app_id_endpoint:aivoice_api_errors:rate5m / (app_id_endpoint:aivoice_api_requests:rate5m > 0)
            ||| % v,
          },
          {
            record: 'app_id:aivoice_api_requests:rate5m',
            expr: |||
              sum by (%(job)s, app_id) (app_id_endpoint:aivoice_api_requests:rate5m)
            ||| % v,
          },
          {
            record: 'app_id:aivoice_api_errors:rate5m',
            expr: |||
              sum by (%(job)s, app_id) (app_id_endpoint:aivoice_api_errors:rate5m)
            ||| % v,
          },
          {
            record: 'app_id_code:aivoice_api_errors:rate5m',
            expr: |||
              sum by (%(job)s, app_id, code) (max without (%(replicas)s) (
                rate(aivoice_api_errors_total{%(selAnd)sapp_id!=""}[5m])
              ))
            ||| % v,
          },
          {
            record: 'app_id:aivoice_api_errors:ratio_rate5m',
            // failed requests / requests over both endpoints, 0..1; absent when idle
            expr: |||
              app_id:aivoice_api_errors:rate5m / (app_id:aivoice_api_requests:rate5m > 0)
            ||| % v,
          },
          {
            record: 'app_id_endpoint_le:aivoice_api_request_duration_seconds_bucket:rate5m',
            expr: |||
              sum by (%(job)s, app_id, endpoint, le) (max without (%(replicas)s) (
                rate(aivoice_api_request_duration_seconds_bucket{%(selAnd)sapp_id!=""}[5m])
              ))
            ||| % v,
          },
          {
            record: 'app_id_endpoint:aivoice_api_request_duration_seconds:p50_rate5m',
            expr: |||
              histogram_quantile(0.5, app_id_endpoint_le:aivoice_api_request_duration_seconds_bucket:rate5m)
            ||| % v,
          },
          {
            record: 'app_id_endpoint:aivoice_api_request_duration_seconds:p95_rate5m',
            expr: |||
              histogram_quantile(0.95, app_id_endpoint_le:aivoice_api_request_duration_seconds_bucket:rate5m)
            ||| % v,
          },
          {
            record: 'app_id_le:aivoice_api_request_duration_seconds_bucket:rate5m',
            // both endpoints together
            expr: |||
              sum by (%(job)s, app_id, le) (app_id_endpoint_le:aivoice_api_request_duration_seconds_bucket:rate5m)
            ||| % v,
          },
          {
            record: 'app_id:aivoice_api_request_duration_seconds:p50_rate5m',
            expr: |||
              histogram_quantile(0.5, app_id_le:aivoice_api_request_duration_seconds_bucket:rate5m)
            ||| % v,
          },
          {
            record: 'app_id:aivoice_api_request_duration_seconds:p95_rate5m',
            expr: |||
              histogram_quantile(0.95, app_id_le:aivoice_api_request_duration_seconds_bucket:rate5m)
            ||| % v,
          },
          {
            record: 'app_id:aivoice_poll_last_success_age_seconds:value',
            // seconds since the app's last clean poll, by any replica
            expr: |||
              time() - max without (%(replicas)s) (aivoice_poll_last_success_timestamp_seconds%(sel)s)
            ||| % v,
          },
          // ---- call outcomes, per app -----------------------------------------------------------
          {
            record: 'app_id:aivoice_call_results:rate5m',
            // calls ended per second (every result)
            expr: |||
              sum by (%(job)s, app_id) (max without (%(replicas)s) (
                rate(aivoice_call_results_total%(sel)s[5m])
              ))
            ||| % v,
          },
          {
            record: 'app_id:aivoice_call_results:increase15m',
            // calls ended in the last 15 minutes: the fault alerts' "enough calls to judge"
            expr: |||
              sum by (%(job)s, app_id) (max without (%(replicas)s) (
                increase(aivoice_call_results_total%(sel)s[15m])
              ))
            ||| % v,
          },
          {
            record: 'app_id:aivoice_call_results:increase1h',
            // calls ended in the last hour: the answer-rate alert's "enough calls to judge"
            expr: |||
              sum by (%(job)s, app_id) (max without (%(replicas)s) (
                increase(aivoice_call_results_total%(sel)s[1h])
              ))
            ||| % v,
          },
          {
            record: 'app_id:aivoice_call_results_answered:ratio_increase1h',
            // answered / all calls that ended in the last hour, 0..1
            expr: |||
              sum by (%(job)s, app_id) (max without (%(replicas)s) (
                increase(aivoice_call_results_total{%(selAnd)sresult=~"ANSWERED|TRANSFER_ARTIFICIAL"}[1h])
              ))
              / (app_id:aivoice_call_results:increase1h > 0)
            ||| % v,
          },
          {
            record: 'app_id:aivoice_call_results_line_fault:ratio_increase15m',
            // FROM_PHONE_ERROR + SYSTEM_ERROR / all calls that ended in the last 15 minutes
            expr: |||
              sum by (%(job)s, app_id) (max without (%(replicas)s) (
                increase(aivoice_call_results_total{%(selAnd)sresult=~"FROM_PHONE_ERROR|SYSTEM_ERROR"}[15m])
              ))
              / (app_id:aivoice_call_results:increase15m > 0)
            ||| % v,
          },
          {
            record: 'app_id:aivoice_call_results_call_loss:ratio_increase15m',
            // CALL_LOSS / all calls that ended in the last 15 minutes
            expr: |||
              sum by (%(job)s, app_id) (max without (%(replicas)s) (
                increase(aivoice_call_results_total{%(selAnd)sresult="CALL_LOSS"}[15m])
              ))
              / (app_id:aivoice_call_results:increase15m > 0)
            ||| % v,
          },
          {
            record: 'app_id:aivoice_call_records_poll_per_call:ratio_increase1h',
            // recordQuery records received (counts of one record included) per call counted
            // in the last hour: what the read plan costs, about 1 to 2 where it works
            expr: |||
              sum by (%(job)s, app_id) (max without (%(replicas)s) (
                increase(aivoice_call_records_total{%(selAnd)ssource="poll"}[1h])
              ))
              / (app_id:aivoice_call_results:increase1h > 0)
            ||| % v,
          },
          // ---- call outcomes, per line (the tenant's caller numbers) ------------------------------
          // A line's documented results start at 0 when its first call is counted, so that call
          // itself is missed by increase(): a small bias for a window of many calls.
          {
            record: 'app_id_line_id:aivoice_line_call_results:rate5m',
            // calls ended per second on each line (every result)
            expr: |||
              sum by (%(job)s, app_id, line_id) (max without (%(replicas)s) (rate(aivoice_line_call_results_total%(sel)s[5m])))
            ||| % v,
          },
          {
            record: 'app_id_line_id:aivoice_line_call_results_answered:rate5m',
            expr: |||
              sum by (%(job)s, app_id, line_id) (max without (%(replicas)s) (
                rate(aivoice_line_call_results_total{%(selAnd)sresult=~"ANSWERED|TRANSFER_ARTIFICIAL"}[5m])
              ))
            ||| % v,
          },
          {
            record: 'app_id_line_id:aivoice_line_call_results_line_fault:rate5m',
            expr: |||
              sum by (%(job)s, app_id, line_id) (max without (%(replicas)s) (
                rate(aivoice_line_call_results_total{%(selAnd)sresult=~"FROM_PHONE_ERROR|SYSTEM_ERROR"}[5m])
              ))
            ||| % v,
          },
          {
            record: 'app_id_line_id:aivoice_line_call_results:increase15m',
            expr: |||
              sum by (%(job)s, app_id, line_id) (max without (%(replicas)s) (increase(aivoice_line_call_results_total%(sel)s[15m])))
            ||| % v,
          },
          {
            record: 'app_id_line_id:aivoice_line_call_results_line_fault:ratio_increase15m',
            // FROM_PHONE_ERROR + SYSTEM_ERROR / all calls on the line in the last 15 minutes
            expr: |||
              sum by (%(job)s, app_id, line_id) (max without (%(replicas)s) (
                increase(aivoice_line_call_results_total{%(selAnd)sresult=~"FROM_PHONE_ERROR|SYSTEM_ERROR"}[15m])
              ))
              / (app_id_line_id:aivoice_line_call_results:increase15m > 0)
            ||| % v,
          },
          {
            record: 'app_id_line_id:aivoice_line_call_results:increase1h',
            expr: |||
              sum by (%(job)s, app_id, line_id) (max without (%(replicas)s) (increase(aivoice_line_call_results_total%(sel)s[1h])))
            ||| % v,
          },
          {
            record: 'app_id_line_id:aivoice_line_call_results_answered:increase1h',
            expr: |||
              sum by (%(job)s, app_id, line_id) (max without (%(replicas)s) (
                increase(aivoice_line_call_results_total{%(selAnd)sresult=~"ANSWERED|TRANSFER_ARTIFICIAL"}[1h])
              ))
            ||| % v,
          },
          {
            record: 'app_id_line_id:aivoice_line_call_results_answered:ratio_increase1h',
            // answered / all calls on the line in the last hour, 0..1
            expr: |||
              app_id_line_id:aivoice_line_call_results_answered:increase1h
              / (app_id_line_id:aivoice_line_call_results:increase1h > 0)
            ||| % v,
          },
          {
            record: 'app_id_line_id:aivoice_line_call_results_other_lines:increase1h',
            // calls on the app's other lines in the last hour: the app's, less the line's own
            expr: |||
              sum by (%(job)s, app_id) (app_id_line_id:aivoice_line_call_results:increase1h)
              - on (%(job)s, app_id) group_right
                app_id_line_id:aivoice_line_call_results:increase1h
            ||| % v,
          },
          {
            record: 'app_id_line_id:aivoice_line_call_results_answered_other_lines:ratio_increase1h',
            // the answered share of the app's other lines in the last hour: what a line is
            // compared with (AivoiceLineAnswerRateLow)
            expr: |||
              (
                sum by (%(job)s, app_id) (app_id_line_id:aivoice_line_call_results_answered:increase1h)
                - on (%(job)s, app_id) group_right
                  app_id_line_id:aivoice_line_call_results_answered:increase1h
              )
              / (app_id_line_id:aivoice_line_call_results_other_lines:increase1h > 0)
            ||| % v,
          },
          {
            record: 'app_id_line_id:aivoice_line_info:max',
            // each line's name, once per line (replicas and other target labels dropped); a
            // line renamed a moment ago has both names until the old series goes stale
            expr: |||
              max by (%(job)s, app_id, line_id, line) (aivoice_line_info%(sel)s)
            ||| % v,
          },
          // ---- call outcomes, per task ----------------------------------------------------------
          // A task's result series start when its first call with that result is counted, so the
          // first call of each (task, result) is missed by increase(): a small bias for a window
          // of many calls.
          {
            record: 'app_id_job_id:aivoice_task_call_results:increase1h',
            expr: |||
              sum by (%(job)s, app_id, job_id) (max without (%(replicas)s) (
                increase(aivoice_task_call_results_total%(sel)s[1h])
              ))
            ||| % v,
          },
          {
            record: 'app_id_job_id:aivoice_task_call_results_answered:ratio_increase1h',
            // answered / all calls of the task that ended in the last hour, 0..1; a task with no
            // answered series yet is 0 (`or`), not absent
            expr: |||
              (
                sum by (%(job)s, app_id, job_id) (max without (%(replicas)s) (
                  increase(aivoice_task_call_results_total{%(selAnd)sresult=~"ANSWERED|TRANSFER_ARTIFICIAL"}[1h])
                ))
                or 0 * app_id_job_id:aivoice_task_call_results:increase1h
              )
              / (app_id_job_id:aivoice_task_call_results:increase1h > 0)
            ||| % v,
          },
          // ---- the account's balance, per account -----------------------------------------------
          {
            record: 'account:aivoice_call_cost:rate1h',
            // what the account's calls cost per second over the last hour, from the push's `pay`
            expr: |||
              sum by (%(job)s, account) (
                sum by (%(job)s, app_id) (max without (%(replicas)s) (
                  rate(aivoice_call_cost_total%(sel)s[1h])
                ))
                * on (%(job)s, app_id) group_left (account)
                  max by (%(job)s, app_id, account) (aivoice_app_info%(sel)s)
              )
            ||| % v,
          },
          {
            record: 'account:aivoice_account_balance_fall:deriv1h',
            // how fast the balance falls, per second, over the last hour (0 while it rises)
            expr: |||
              sum by (%(job)s, account) (max without (%(replicas)s) (
                clamp_min(-deriv(aivoice_account_balance{%(selAnd)skind="balance"}[1h]), 0)
              ))
            ||| % v,
          },
          {
            record: 'account:aivoice_account_spend:rate1h',
            // spend per second: the push's cost where it is set up, else the balance's fall
            expr: |||
              account:aivoice_call_cost:rate1h or account:aivoice_account_balance_fall:deriv1h
            ||| % v,
          },
          {
            record: 'account:aivoice_account_runway_seconds:rate1h',
            // seconds of calling left at the last hour's spend; absent while nothing is spent
            expr: |||
              clamp_min(
                sum by (%(job)s, account)
                (max without (%(replicas)s) (aivoice_account_balance{%(selAnd)skind="balance"})),
                0
              )
              / (account:aivoice_account_spend:rate1h > 0)
            ||| % v,
          },
          {
            record: 'account:aivoice_account_balance:negated',
            // minus the balance: grows as calls spend, falls at a top-up, so resets() over it
            // counts the top-ups (AivoiceBalanceRunningOut)
            expr: |||
              -sum by (%(job)s, account) (max without (%(replicas)s) (
                aivoice_account_balance{%(selAnd)skind="balance"}
              ))
            ||| % v,
          },
          // ---- shards and replicas --------------------------------------------------------------
          {
            record: 'shard:aivoice_exporter_shard:count',
            // live processes per shard (the label `shard`): 2 with two replicas of every shard
            expr: |||
              count_values by (%(job)s) ("shard", aivoice_exporter_shard%(sel)s)
            ||| % v,
          },
          {
            record: 'shard:aivoice_exporter_shard:max',
            // the shard's number as the value, per shard that has a live process (to compare with
            // the total, which a label cannot be)
            expr: |||
              max by (%(job)s, shard) (
                aivoice_exporter_shard%(sel)s
                * on (%(job)s, %(replicas)s) group_left (shard)
                  count_values by (%(job)s, %(replicas)s) ("shard", aivoice_exporter_shard%(sel)s)
              )
            ||| % v,
          },
          {
            record: 'job:aivoice_exporter_total_shards:max',
            // the job's shard count (the highest, if its processes disagree)
            expr: |||
              max by (%(job)s) (aivoice_exporter_total_shards%(sel)s)
            ||| % v,
          },
          {
            record: 'shard:aivoice_exporter_shard:missing',
            // shards served at some time in the last day, below the latest shard count, and with
            // no live process now; only where there are shards (an unsharded exporter that dies is
            // AivoiceExporterDown, as it always was). Value: the shard's number.
            expr: |||
              (
                  max_over_time(shard:aivoice_exporter_shard:max[1d])
                < on (%(job)s) group_left ()
                  (last_over_time(job:aivoice_exporter_total_shards:max[1d]) > 1)
              )
              unless on (%(job)s, shard)
                shard:aivoice_exporter_shard:count
            ||| % v,
          },
        ],
      },
    ],
  },
}
