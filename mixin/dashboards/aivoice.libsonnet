// The dashboard: its rows top to bottom, each panel one builder call (panels.libsonnet).
//
// Queries select the exporter's series with %(sel)s (the aivoiceSelector, the cluster and job
// variables) and recorded series with %(vars)s (the variables only: a recorded series keeps the
// job and cluster, not the other target labels); `max without (%(replicas)s)` keeps one value
// of the series every replica exports, as the rules do.
local p = import 'panels.libsonnet';

{
  local c = $._config,
  local exporter = if c.aivoiceSelector == '' then [] else [c.aivoiceSelector],
  local cluster = if c.showMultiCluster then ['%s=~"$cluster"' % c.clusterLabel] else [],
  // A per-line query with each line's name (`line`, from channelList) joined on, one name per
  // line; a line that channelList does not list keeps its id alone.
  local named(expr) = '(' + std.rstripChars(expr, '
') + ')
' + |||
    * on (app_id, line_id) group_left (line) (
      topk by (app_id, line_id) (1, max by (app_id, line_id, line) (app_id_line_id:aivoice_line_info:max{%(vars)s, app_id=~"$app_id"}))
      or on (app_id, line_id) max by (app_id, line_id) (0 * (%(expr)s) + 1)
    )
  ||| % (v { expr: std.rstripChars(expr, '
') }),
  local v = {
    replicas: std.join(', ', c.replicaLabels),
    vars: std.join(', ', cluster + ['job=~"$job"']),
    sel: std.join(', ', exporter + cluster + ['job=~"$job"']),
    // the exporter's series in the selected cluster, for the job variable's values
    up: std.join(', ', exporter + cluster),
  },

  // The labels the tables leave out: the target's, the replicas' and the cluster's.
  local hiddenColumns = {
    [label]: true
    for label in ['Time', 'job', 'namespace', 'container', 'endpoint', 'service']
                 + c.replicaLabels + clusterLabels
  },
  local clusterLabels = if c.showMultiCluster then [c.clusterLabel] else [],

  // A column of the campaign table: `value` has one series per task; the task's name and
  // status join it, for the tasks of the selected statuses (topk: one info series per task,
  // whichever replica exports it).
  local taskColumn(value) = p.tableTarget(|||-
    %s
    * on (job, app_id, job_id) group_left (name, status)
      topk by (job, app_id, job_id) (1, aivoice_task_info{%s, app_id=~"$app_id", status=~"$status"})
  ||| % [value, v.sel]),

  local rows = [
    p.row(1, 'Exporter and API health', [
      p.stat(2, 'Exporter scrape', |||
        Whether Prometheus can scrape each exporter instance of the selected jobs (the `up` series).
        DOWN for 5 minutes fires AivoiceExporterDown (critical). With replicas (--shard,
        --total-shards) there is one per process: a DOWN replica whose twin is UP leaves its apps
        watched (AivoiceShardDegraded).
      |||, [
        p.instant('up{%(vars)s}' % v, '{{instance}}')
      ])
      + p.at(0, 0, 4, 5) + p.unit('none') + p.steps([['red', null], ['green', 1]])
      + p.valueMappings({ '0': ['DOWN', 'red'], '1': ['UP', 'green'] }),
      p.stat(3, 'App polls', |||
        Whether each app's latest poll of the API succeeded (`aivoice_up`). FAILING for 10 minutes
        fires AivoiceAppPollsFailing; the API's code is in the errors panel and the exporter's log.
        With replicas, FAILING only when every replica of the app fails.
      |||, [
        p.instant('max without (%(replicas)s) (aivoice_up{%(sel)s, app_id=~"$app_id"})' % v, '{{app_id}}')
      ])
      + p.at(4, 0, 6, 5) + p.unit('none') + p.steps([['red', null], ['green', 1]])
      + p.valueMappings({ '0': ['FAILING', 'red'], '1': ['OK', 'green'] }),
      p.stat(4, 'Age of the last good poll', |||
        Seconds since each app was last polled without error. Orange after 5 minutes; red at 15
        minutes, the AivoiceDataStale threshold. Between polls it grows up to poll.interval_seconds.
      |||, [
        p.instant('app_id:aivoice_poll_last_success_age_seconds:value{%(vars)s, app_id=~"$app_id"}' % v, '{{app_id}}')
      ])
      + p.at(10, 0, 6, 5) + p.unit('s') + p.steps([['green', null], ['orange', 300], ['red', 900]]),
      p.stat(5, 'API error ratio (5m)', |||
        Share of each endpoint's API requests (taskList, recordQuery) that failed over the last 5
        minutes, retries included. Red at 10%: above it for 15 minutes fires
        AivoiceApiErrorRatioHigh. No value while an endpoint sends no requests.
      |||, [
        p.instant('app_id_endpoint:aivoice_api_errors:ratio_rate5m{%(vars)s, app_id=~"$app_id"}' % v, '{{app_id}} {{endpoint}}')
      ])
      + p.at(16, 0, 8, 5) + p.unit('percentunit')
      + p.steps([['green', null], ['orange', 0.05], ['red', 0.1]])
      + { fieldConfig+: { defaults+: { min: 0, max: 1, decimals: 1 } } },
      p.timeseries(6, 'API errors by code', |||
        Failed API requests per minute by app and code: the API's own status (-1 authentication, -4
        clock, -6 IP, -37/-50 app, ...), http_<N>, timeout, connection or invalid_response. Empty
        while nothing fails. Each code has a runbook in docs/runbook.md.
      |||, [
        p.range('60 * sum by (app_id, endpoint, code) (max without (%(replicas)s) (rate(aivoice_api_errors_total{%(sel)s, app_id=~"$app_id"}[$__rate_interval]))) > 0' % v, '{{app_id}} {{endpoint}} {{code}}')
      ])
      + p.at(0, 5, 8, 8) + p.unit('suffix: errors/min') + p.steps([['green', null], ['red', 1]])
      + {
        fieldConfig+: {
          defaults+: {
            custom+: { drawStyle: 'bars', fillOpacity: 80, stacking+: { mode: 'normal' } },
            noValue: 'No errors',
          },
        },
      },
      p.timeseries(7, 'API latency p50 / p95', |||
        Median and 95th percentile of API request latency per app and endpoint (taskList,
        recordQuery) over 5 minutes, from aivoice_api_request_duration_seconds. The red line is the
        default api.timeout_seconds (10 s): requests near it time out and retry.
      |||, [
        p.range('app_id_endpoint:aivoice_api_request_duration_seconds:p50_rate5m{%(vars)s, app_id=~"$app_id"}' % v, '{{app_id}} {{endpoint}} p50'),
        p.range('app_id_endpoint:aivoice_api_request_duration_seconds:p95_rate5m{%(vars)s, app_id=~"$app_id"}' % v, '{{app_id}} {{endpoint}} p95')
      ])
      + p.at(8, 5, 8, 8) + p.unit('s') + p.steps([['green', null], ['orange', 5], ['red', 10]])
      + {
        fieldConfig+: { defaults+: { custom+: { thresholdsStyle+: { mode: 'line' } } } },
      },
      p.timeseries(8, 'Poll duration', |||
        Wall time of each app's latest poll, all pages and retries. The red line is the default
        poll.interval_seconds (60 s): a poll longer than the interval delays the next one.
      |||, [
        p.range('max without (%(replicas)s) (aivoice_poll_duration_seconds{%(sel)s, app_id=~"$app_id"})' % v, '{{app_id}}')
      ])
      + p.at(16, 5, 8, 8) + p.unit('s') + p.steps([['green', null], ['orange', 30], ['red', 60]])
      + {
        fieldConfig+: { defaults+: { custom+: { thresholdsStyle+: { mode: 'line' } } } },
      },
    ]),
    p.row(9, 'Account at a glance', [
      p.bargauge(10, 'Tasks by status now', |||
        How many tasks (campaigns) the selected apps have in each status, from the latest poll.
      |||, [
        p.instant('sum by (status) (max without (%(replicas)s) (aivoice_tasks{%(sel)s, app_id=~"$app_id", status=~"$status"}))' % v, '{{status}}')
      ])
      + p.at(0, 0, 6, 8) + p.unit('short') + p.steps([['blue', null]]),
      p.timeseries(11, 'Tasks by status over time', |||
        Tasks per status, stacked: campaigns moving from NOT_STARTED/IN_QUEUE through IN_PROCESS to
        COMPLETED, or into USER_PAUSE, SYSTEM_SUSPENDED or TERMINATE.
      |||, [
        p.range('sum by (status) (max without (%(replicas)s) (aivoice_tasks{%(sel)s, app_id=~"$app_id", status=~"$status"}))' % v, '{{status}}')
      ])
      + p.at(6, 0, 12, 8) + p.unit('short') + p.steps([['blue', null]])
      + {
        fieldConfig+: {
          defaults+: { custom+: { fillOpacity: 30, stacking+: { mode: 'normal' } }, decimals: 0 },
        },
      },
      p.stat(12, 'Calls completed per minute', |||
        Completed calls per minute over the selected apps, from the change of
        aivoice_calls_completed over 5 minutes (app_id:aivoice_calls_completed:deriv5m). 0 while no
        campaign runs.
      |||, [
        p.instant('60 * sum(app_id:aivoice_calls_completed:deriv5m{%(vars)s, app_id=~"$app_id"})' % v, 'calls/min')
      ])
      + p.at(18, 0, 6, 4) + p.unit('suffix: calls/min') + p.steps([['blue', null]])
      + { fieldConfig+: { defaults+: { decimals: 1 } }, options+: { colorMode: 'value' } },
      p.stat(13, 'Running campaigns: completed', |||
        Completed calls as a share of all calls of the IN_PROCESS tasks of the selected apps.
      |||, [
        p.instant('sum(max without (%(replicas)s) (aivoice_calls_completed{%(sel)s, app_id=~"$app_id", status="IN_PROCESS"})) / sum(max without (%(replicas)s) (aivoice_calls{%(sel)s, app_id=~"$app_id", status="IN_PROCESS"}))' % v, 'completed')
      ])
      + p.at(18, 4, 6, 4) + p.unit('percentunit') + p.steps([['blue', null]])
      + {
        fieldConfig+: { defaults+: { min: 0, max: 1, decimals: 1 } },
        options+: { colorMode: 'value' },
      },
      p.timeseries(14, 'Calls completed per minute, by app', |||
        Completed calls per minute per app over 5 minutes. A drop to 0 while campaigns are
        IN_PROCESS means calling has stopped: see the last row.
      |||, [
        p.range('60 * app_id:aivoice_calls_completed:deriv5m{%(vars)s, app_id=~"$app_id"}' % v, '{{app_id}}')
      ])
      + p.at(0, 8, 12, 8) + p.unit('suffix: calls/min') + p.steps([['blue', null]]),
      p.timeseries(15, 'Calls left in running campaigns', |||
        Calls not yet completed (taskTotal - taskCompleted) in the IN_PROCESS tasks of each app: the
        backlog the robots still have to work through.
      |||, [
        p.range(|||-
          sum by (app_id) (
            max without (%(replicas)s) (aivoice_calls{%(sel)s, app_id=~"$app_id", status="IN_PROCESS"})
            - max without (%(replicas)s) (aivoice_calls_completed{%(sel)s, app_id=~"$app_id", status="IN_PROCESS"})
          )
        ||| % v, '{{app_id}}')
      ])
      + p.at(12, 8, 12, 8) + p.unit('short') + p.steps([['blue', null]])
      + { fieldConfig+: { defaults+: { decimals: 0 } } },
    ]),
    p.row(21, 'Calls', [
      p.stat(22, 'Answer rate (1h)', |||
        Share of each app's calls that ended in the last hour and were answered (ANSWERED or
        TRANSFER_ARTIFICIAL). AivoiceAnswerRateLow fires when it falls under half of the same hour a
        week earlier, with at least 100 calls in both hours. No value while no call ended.
      |||, [
        p.instant('app_id:aivoice_call_results_answered:ratio_increase1h{%(vars)s, app_id=~"$app_id"}' % v, '{{app_id}}')
      ])
      + p.at(0, 0, 8, 5) + p.unit('percentunit') + p.steps([['blue', null]])
      + {
        fieldConfig+: { defaults+: { min: 0, max: 1, decimals: 1 } },
        options+: { colorMode: 'value' },
      },
      p.stat(23, 'Calls ended per minute', |||
        Calls that ended per minute over the last 5 minutes, whatever their result, per app; from
        aivoice_call_results_total (call records polled and pushed, each call once).
      |||, [
        p.instant('60 * app_id:aivoice_call_results:rate5m{%(vars)s, app_id=~"$app_id"}' % v, '{{app_id}}')
      ])
      + p.at(8, 0, 8, 5) + p.unit('suffix: calls/min') + p.steps([['blue', null]])
      + { fieldConfig+: { defaults+: { decimals: 1 } }, options+: { colorMode: 'value' } },
      p.stat(24, 'Call record polls', |||
        Whether each app's latest recordQuery poll succeeded (aivoice_calls_up; only with
        calls.enabled). FAILING for 10 minutes fires AivoiceCallRecordsFailing; task polls are
        judged apart (App polls).
      |||, [
        p.instant('max without (%(replicas)s) (aivoice_calls_up{%(sel)s, app_id=~"$app_id"})' % v, '{{app_id}}')
      ])
      + p.at(16, 0, 8, 5) + p.unit('none') + p.steps([['red', null], ['green', 1]])
      + p.valueMappings({ '0': ['FAILING', 'red'], '1': ['OK', 'green'] }),
      p.timeseries(25, 'Call outcomes', |||
        Calls that ended per minute by result (resultStatus), stacked, over the selected apps. Red:
        line faults (FROM_PHONE_ERROR, SYSTEM_ERROR; AivoiceLineFailing over 20%); orange:
        CALL_LOSS, no free AI seat (AivoiceCallLoss over 10%).
      |||, [
        p.range('60 * sum by (result) (max without (%(replicas)s) (rate(aivoice_call_results_total{%(sel)s, app_id=~"$app_id"}[$__rate_interval])))' % v, '{{result}}')
      ])
      + p.at(0, 5, 12, 8) + p.unit('suffix: calls/min') + p.steps([['green', null]])
      + {
        fieldConfig+: {
          defaults+: { custom+: { fillOpacity: 80, stacking+: { mode: 'normal' } } },
          overrides: p.seriesColors({
            ANSWERED: 'green',
            TRANSFER_ARTIFICIAL: 'light-green',
            FROM_PHONE_ERROR: 'red',
            SYSTEM_ERROR: 'dark-red',
            CALL_LOSS: 'orange',
          }),
        },
      },
      p.timeseries(26, 'Talk time p50 / p95', |||
        Median and 95th percentile talk time (chatDuration) of the answered calls that ended in the
        last 15 minutes, per app, from the aivoice_call_talk_duration_seconds histogram (buckets 5 s
        to 600 s; above 600 s reads as 600 s).
      |||, [
        p.range('histogram_quantile(0.5, sum by (app_id, le) (max without (%(replicas)s) (rate(aivoice_call_talk_duration_seconds_bucket{%(sel)s, app_id=~"$app_id"}[15m]))))' % v, '{{app_id}} p50'),
        p.range('histogram_quantile(0.95, sum by (app_id, le) (max without (%(replicas)s) (rate(aivoice_call_talk_duration_seconds_bucket{%(sel)s, app_id=~"$app_id"}[15m]))))' % v, '{{app_id}} p95')
      ])
      + p.at(12, 5, 12, 8) + p.unit('s') + p.steps([['green', null]]),
      p.timeseries(27, 'Billed minutes per hour', |||
        Billed call time per app at the current pace, in minutes per hour (recordQuery
        chargedDuration, push billingTime), from aivoice_call_billed_seconds_total.
      |||, [
        p.range('60 * sum by (app_id) (max without (%(replicas)s) (rate(aivoice_call_billed_seconds_total{%(sel)s, app_id=~"$app_id"}[$__rate_interval])))' % v, '{{app_id}}')
      ])
      + p.at(0, 13, 6, 8) + p.unit('suffix: min/h') + p.steps([['green', null]]),
      p.timeseries(28, 'Spend per hour', |||
        Amount charged per hour at the current pace, per app and currency (push `pay`, in
        push.currency), from aivoice_call_cost_total. Only with the push on: recordQuery carries no
        cost.
      |||, [
        p.range('3600 * sum by (app_id, currency) (max without (%(replicas)s) (rate(aivoice_call_cost_total{%(sel)s, app_id=~"$app_id"}[$__rate_interval])))' % v, '{{app_id}} {{currency}}')
      ])
      + p.at(6, 13, 6, 8) + p.unit('short') + p.steps([['green', null]])
      + { fieldConfig+: { defaults+: { decimals: 2 } } },
      p.timeseries(29, 'Call records by source and outcome', |||
        Call records received per minute: polled (recordQuery) or pushed, and counted, a duplicate
        (already counted from either source) or rejected (unreadable, or for an app not in the
        config: those have no app and show only with All apps).
      |||, [
        p.range('60 * sum by (source, outcome) (max without (%(replicas)s) (rate(aivoice_call_records_total{%(sel)s, app_id=~"$app_id"}[$__rate_interval])))' % v, '{{source}} {{outcome}}')
      ])
      + p.at(12, 13, 6, 8) + p.unit('suffix: records/min') + p.steps([['green', null]])
      + {
        fieldConfig+: {
          overrides: p.seriesColors({ 'push rejected': 'red', 'poll rejected': 'dark-red' }),
        },
      },
      p.timeseries(30, 'Push answers by code', |||
        The push listener's answers to the vendor per minute by HTTP status (pushes carry no app
        until read). 404: a wrong token or path; 5 or more in 10 minutes fires
        AivoicePushRejected. 400: unreadable body, 413: over 1 MB, 503: not every replica that
        owns the push got it (the vendor retries). Summed over the processes: a push lands on
        one of them. The pushes one process hands on to another (sender="peer") are left out,
        so this reads the same with one process as with several.
      |||, [
        p.range('60 * sum by (code) (rate(aivoice_push_requests_total{%(sel)s, sender="vendor"}[$__rate_interval]))' % v, '{{code}}')
      ])
      + p.at(18, 13, 6, 8) + p.unit('suffix: req/min') + p.steps([['green', null]])
      + {
        fieldConfig+: {
          overrides: p.seriesColors({ '200': 'green', '404': 'red' }),
        },
      },
    ]),
    p.row(35, 'Lines', [
      p.timeseries(36, 'Calls per minute, by line', |||
        Calls that ended per minute on each calling line (tenantPhoneNumberId) over 5 minutes,
        named from channelList (line id in brackets; a line not listed shows its id alone), from
        aivoice_line_call_results_total: each call once, summing to the app's calls.
      |||, [
        p.range(named('60 * sum by (app_id, line_id) (app_id_line_id:aivoice_line_call_results:rate5m{%(vars)s, app_id=~"$app_id"})' % v), '{{app_id}} {{line}} ({{line_id}})')
      ])
      + p.at(0, 0, 12, 8) + p.unit('suffix: calls/min') + p.steps([['green', null]]),
      p.timeseries(37, 'Answer rate, by line', |||
        Share of each line's calls over 5 minutes that were answered (ANSWERED or
        TRANSFER_ARTIFICIAL). A line far under the app's other lines is being labelled as spam
        or is in arrears: AivoiceLineAnswerRateLow fires under half of the others' share over an
        hour, with 100 calls on each side.
      |||, [
        p.range(named(|||
          sum by (app_id, line_id) (app_id_line_id:aivoice_line_call_results_answered:rate5m{%(vars)s, app_id=~"$app_id"})
          / (sum by (app_id, line_id) (app_id_line_id:aivoice_line_call_results:rate5m{%(vars)s, app_id=~"$app_id"}) > 0)
        ||| % v), '{{app_id}} {{line}} ({{line_id}})')
      ])
      + p.at(12, 0, 12, 8) + p.unit('percentunit') + p.steps([['green', null]])
      + { fieldConfig+: { defaults+: { min: 0, max: 1 } } },
      p.timeseries(38, 'Line faults per minute, by line', |||
        Calls per minute on each line that failed on the line: FROM_PHONE_ERROR (the line's
        fault, or its account in arrears) and SYSTEM_ERROR (the platform's). Over 20% of a
        line's calls in 15 minutes fires AivoiceLineFailing for that line.
      |||, [
        p.range(named('60 * sum by (app_id, line_id) (app_id_line_id:aivoice_line_call_results_line_fault:rate5m{%(vars)s, app_id=~"$app_id"})' % v), '{{app_id}} {{line}} ({{line_id}})')
      ])
      + p.at(0, 8, 12, 8) + p.unit('suffix: calls/min') + p.steps([['green', null]]),
      p.timeseries(39, 'Spend per hour, by line', |||
        Amount charged per hour at the current pace on each line, in push.currency, from
        aivoice_line_call_cost_total. Only with the push on: recordQuery carries no cost.
      |||, [
        p.range(named('3600 * sum by (app_id, line_id) (max without (%(replicas)s) (rate(aivoice_line_call_cost_total{%(sel)s, app_id=~"$app_id"}[$__rate_interval])))' % v), '{{app_id}} {{line}} ({{line_id}})')
      ])
      + p.at(12, 8, 12, 8) + p.unit('short') + p.steps([['green', null]])
      + { fieldConfig+: { defaults+: { decimals: 2 } } },
    ]),
    p.row(31, 'Account', [
      p.timeseries(32, 'Balance, gift and credit', |||
        Each account's balance, gift and credit from getBalance (balance.enabled), in the account's
        currency. A balance at or below zero fires AivoiceBalanceExhausted (critical); a fall that
        reaches zero within a day fires AivoiceBalanceRunningOut. Gaps: the balance query failed
        past poll.stale_after_seconds (AivoiceBalanceUnavailable).
      |||, [
        p.range('max without (%(replicas)s) (aivoice_account_balance{%(sel)s})' % v, '{{account}} {{kind}}')
      ])
      + p.at(0, 0, 8, 8) + p.unit('short') + p.steps([['red', null], ['green', 0.01]])
      + { options+: { legend+: { displayMode: 'list' }, tooltip+: { sort: 'none' } } },
      p.timeseries(33, 'Spend per hour, by account', |||
        What each account spends per hour: the push's cost summed over the account's apps
        (aivoice_app_info) where the push is set up, else how fast its balance falls
        (account:aivoice_account_spend:rate1h x 3600).
      |||, [
        p.range('account:aivoice_account_spend:rate1h{%(vars)s} * 3600' % v, '{{account}}')
      ])
      + p.at(8, 0, 8, 8) + p.unit('short') + p.steps([['green', null]])
      + { options+: { legend+: { displayMode: 'list' }, tooltip+: { sort: 'none' } } },
      p.timeseries(34, 'Runway at the current spend', |||
        How long each account's balance lasts at the last hour's spend
        (account:aivoice_account_runway_seconds:rate1h). Under a day is yellow, under 6 hours red.
        Absent while nothing is spent.
      |||, [
        p.range('account:aivoice_account_runway_seconds:rate1h{%(vars)s}' % v, '{{account}}')
      ])
      + p.at(16, 0, 8, 8) + p.unit('s')
      + p.steps([['red', null], ['yellow', 21600], ['green', 86400]])
      + { options+: { legend+: { displayMode: 'list' }, tooltip+: { sort: 'none' } } },
    ]),
    p.row(16, 'Campaigns', [
      p.table(17, 'Campaign progress', |||
        One row per task of the selected apps and statuses: completed and total calls, progress
        (completed / total; red under 50%, the AivoiceTaskFinishedLowCompletion threshold for
        finished tasks), completed calls per minute over 5 minutes, the answer rate of the task's
        calls that ended in the last hour (empty without calls), the estimated time to finish at
        that rate (empty while the rate is 0), robots and creation time. Needs metrics.per_task on
        in the exporter's config.
      |||, [
        taskColumn('max without (%(replicas)s) (aivoice_task_calls_completed{%(sel)s, app_id=~"$app_id"})' % v),
        taskColumn('max without (%(replicas)s) (aivoice_task_calls{%(sel)s, app_id=~"$app_id"})' % v),
        taskColumn('app_id_job_id:aivoice_task_progress:ratio{%(vars)s, app_id=~"$app_id"}' % v),
        taskColumn('60 * app_id_job_id:aivoice_task_calls_completed:deriv5m{%(vars)s, app_id=~"$app_id"}' % v),
        taskColumn('app_id_job_id:aivoice_task_time_to_finish_seconds:deriv5m{%(vars)s, app_id=~"$app_id"}' % v),
        taskColumn('max without (%(replicas)s) (aivoice_task_robots{%(sel)s, app_id=~"$app_id"})' % v),
        taskColumn('1000 * max without (%(replicas)s) (aivoice_task_created_timestamp_seconds{%(sel)s, app_id=~"$app_id"})' % v),
        taskColumn('app_id_job_id:aivoice_task_call_results_answered:ratio_increase1h{%(vars)s, app_id=~"$app_id"}' % v)
      ])
      + p.at(0, 0, 24, 12) + p.unit('short') + p.steps([['green', null]])
      + {
        fieldConfig+: {
          overrides: [
            {
              matcher: { id: 'byName', options: 'Status' },
              properties: [
                {
                  id: 'mappings',
                  value: [
                    {
                      type: 'value',
                      options: {
                        IN_PROCESS: { color: 'blue', index: 0 },
                        COMPLETED: { color: 'green', index: 1 },
                        NOT_STARTED: { color: 'text', index: 2 },
                        IN_QUEUE: { color: 'purple', index: 3 },
                        RUNNABLE: { color: 'light-blue', index: 4 },
                        USER_PAUSE: { color: 'orange', index: 5 },
                        SYSTEM_SUSPENDED: { color: 'red', index: 6 },
                        TERMINATE: { color: 'dark-red', index: 7 },
                      },
                    },
                  ],
                },
                { id: 'custom.cellOptions', value: { type: 'color-text' } },
              ],
            },
            {
              matcher: { id: 'byName', options: 'Progress' },
              properties: [
                { id: 'unit', value: 'percentunit' },
                { id: 'min', value: 0 },
                { id: 'max', value: 1 },
                { id: 'decimals', value: 1 },
                {
                  id: 'thresholds',
                  value: {
                    mode: 'absolute',
                    steps: [
                      { color: 'red', value: null },
                      { color: 'orange', value: 0.5 },
                      { color: 'green', value: 0.8 },
                    ],
                  },
                },
                {
                  id: 'custom.cellOptions',
                  value: { type: 'gauge', mode: 'basic', valueDisplayMode: 'text' },
                },
              ],
            },
            {
              matcher: { id: 'byName', options: 'Calls/min' },
              properties: [{ id: 'unit', value: 'suffix: calls/min' }, { id: 'decimals', value: 1 }],
            },
            {
              matcher: { id: 'byName', options: 'Answer rate' },
              properties: [
                { id: 'unit', value: 'percentunit' },
                { id: 'min', value: 0 },
                { id: 'max', value: 1 },
                { id: 'decimals', value: 1 },
              ],
            },
            {
              matcher: { id: 'byName', options: 'ETA' },
              properties: [{ id: 'unit', value: 's' }, { id: 'decimals', value: 0 }],
            },
            {
              matcher: { id: 'byName', options: 'Completed' },
              properties: [{ id: 'decimals', value: 0 }],
            },
            {
              matcher: { id: 'byName', options: 'Total' },
              properties: [{ id: 'decimals', value: 0 }],
            },
            {
              matcher: { id: 'byName', options: 'Robots' },
              properties: [{ id: 'decimals', value: 0 }],
            },
            {
              matcher: { id: 'byName', options: 'Created' },
              properties: [{ id: 'unit', value: 'dateTimeAsIso' }],
            },
          ],
        },
        options+: { sortBy: [{ displayName: 'Status', desc: false }] },
        transformations: [
          { id: 'merge', options: {} },
          {
            id: 'organize',
            options: {
              excludeByName: hiddenColumns,
              indexByName: {
                app_id: 0,
                job_id: 1,
                name: 2,
                status: 3,
                'Value #A': 4,
                'Value #B': 5,
                'Value #C': 6,
                'Value #D': 7,
                'Value #H': 8,
                'Value #E': 9,
                'Value #F': 10,
                'Value #G': 11,
              },
              renameByName: {
                app_id: 'App',
                job_id: 'Job ID',
                name: 'Task',
                status: 'Status',
                'Value #A': 'Completed',
                'Value #B': 'Total',
                'Value #C': 'Progress',
                'Value #D': 'Calls/min',
                'Value #E': 'ETA',
                'Value #F': 'Robots',
                'Value #G': 'Created',
                'Value #H': 'Answer rate',
              },
            },
          },
        ],
      },
    ]),
    p.row(18, 'Running tasks making no progress', [
      p.table(19, 'Running tasks with no completed call in 30 minutes', |||
        IN_PROCESS tasks whose completed count has not moved for 30 minutes although calls are left,
        on apps whose polls succeed (app_id_job_id:aivoice_task_calls_completed:stalled30m, the
        series the AivoiceTaskStalled alert fires on). Check robots (0 robots cannot call), line,
        dialog flow, balance and calling hours. Empty is good.
      |||, [
        p.tableTarget('app_id_job_id:aivoice_task_calls_completed:stalled30m{%(vars)s, app_id=~"$app_id"}' % v),
        p.tableTarget(|||-
          (
            max without (%(replicas)s) (aivoice_task_robots{%(sel)s, app_id=~"$app_id"})
            * on (job, app_id, job_id) group_left (name)
              topk by (job, app_id, job_id) (1, aivoice_task_info{%(sel)s, app_id=~"$app_id", status="IN_PROCESS"})
          )
          and on (job, app_id, job_id)
            app_id_job_id:aivoice_task_calls_completed:stalled30m{%(vars)s, app_id=~"$app_id"}
        ||| % v)
      ])
      + p.at(0, 0, 12, 8) + p.unit('short') + p.steps([['green', null]])
      + {
        fieldConfig+: {
          defaults+: { noValue: 'No stalled tasks' },
          overrides: [
            {
              matcher: { id: 'byName', options: 'Completed' },
              properties: [{ id: 'decimals', value: 0 }],
            },
            {
              matcher: { id: 'byName', options: 'Robots' },
              properties: [
                { id: 'decimals', value: 0 },
                {
                  id: 'thresholds',
                  value: {
                    mode: 'absolute',
                    steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }],
                  },
                },
                { id: 'custom.cellOptions', value: { type: 'color-text' } },
              ],
            },
          ],
        },
        options+: { sortBy: [{ displayName: 'App', desc: false }] },
        transformations: [
          { id: 'merge', options: {} },
          {
            id: 'organize',
            options: {
              excludeByName: hiddenColumns,
              indexByName: { app_id: 0, job_id: 1, name: 2, 'Value #A': 3, 'Value #B': 4 },
              renameByName: {
                app_id: 'App',
                job_id: 'Job ID',
                name: 'Task',
                'Value #A': 'Completed',
                'Value #B': 'Robots',
              },
            },
          },
        ],
      },
      p.timeseries(20, 'Calls per minute of running tasks', |||
        Completed calls per minute of each IN_PROCESS task over 5 minutes. A task flat at 0 for 30
        minutes appears in the table on the left and fires AivoiceTaskStalled.
      |||, [
        p.range(|||-
          60 * app_id_job_id:aivoice_task_calls_completed:deriv5m{%(vars)s, app_id=~"$app_id"}
          * on (job, app_id, job_id) group_left (name)
            topk by (job, app_id, job_id) (1, aivoice_task_info{%(sel)s, app_id=~"$app_id", status="IN_PROCESS"})
        ||| % v, '{{app_id}} {{name}}')
      ])
      + p.at(12, 0, 12, 8) + p.unit('suffix: calls/min')
      + p.steps([['red', null], ['green', 0.001]]),
    ]),
  ],

  // Template variables: the data source, the cluster (one at a time, with showMultiCluster),
  // the scrape jobs, the apps and the task statuses. Each narrows the next one's values.
  local selector(matchers) = if matchers == '' then '' else '{%s}' % matchers,
  local variables =
    [p.datasourceVariable]
    + (
      if c.showMultiCluster then [
        // Named `cluster` whatever the label is (the queries read $cluster).
        p.variable(
          'cluster',
          'Cluster',
          'label_values(aivoice_up%s, %s)' % [selector(c.aivoiceSelector), c.clusterLabel],
          multi=false,
        ),
      ] else []
    )
    + [
      p.variable('job', 'Job', 'label_values(aivoice_up%s, job)' % selector(v.up)),
      p.variable('app_id', 'App', 'label_values(aivoice_up{%(sel)s}, app_id)' % v, allValue='.*'),
      p.variable(
        'status',
        'Task status',
        'label_values(aivoice_tasks{%(sel)s, app_id=~"$app_id"}, status)' % v,
        allValue='.*',
      ),
    ],

  grafanaDashboards+:: {
    'aivoice-dashboard.json': {
      uid: c.dashboardUid,
      title: c.dashboardTitle,
      description: 'Exporter and API health, account overview, call outcomes, campaigns and '
                   + 'stalled tasks from aivoice-exporter.',
      tags: c.dashboardTags,
      editable: true,
      graphTooltip: 1,
      fiscalYearStartMonth: 0,
      liveNow: false,
      refresh: c.refresh,
      schemaVersion: 39,
      version: 1,
      time: { from: 'now-6h', to: 'now' },
      timepicker: {},
      timezone: 'browser',
      weekStart: '',
      annotations: { list: [] },
      links: [{
        title: 'Runbooks',
        type: 'link',
        icon: 'doc',
        url: c.dashboardRunbookLink,
        targetBlank: true,
        asDropdown: false,
        includeVars: false,
        keepTime: false,
        tags: [],
        tooltip: 'What each aivoice alert means and what to do',
      }],
      templating: { list: variables },
      panels: p.layout(rows),
    },
  },
}
