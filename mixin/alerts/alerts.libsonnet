// Alerting rules for aivoice-exporter. Load together with rules.yml (several alerts use its
// recorded series). Every alert links to its runbook section in docs/runbook.md.
//
// AivoiceExporterDown watches `up{job="aivoice"}` (the scrape job of prometheus.yml); set
// upSelector, or aivoiceSelector, in _config if yours is named differently.
//
// Replicas and shards: the alerts about an app, a task or an account read each series once
// however many replicas export it (`max without (instance, pod)`, as rules.yml does), so they
// fire once, with no `instance`, and only when no replica sees things well (an app's polls
// fail on every replica). The alerts about a process (down, its config, its clock, its IP, its
// disk) keep `instance` and the other labels that tell processes apart (replicaLabels), and
// fire for each process concerned. A dead process whose shard still
// has a live replica is AivoiceShardDegraded, not AivoiceExporterDown. The defaults of their
// numbers (each one named in config.libsonnet):
//   AivoiceExporterDown                 up == 0 for 5m, no live replica of its shard  critical
//   AivoiceAuthenticationFailing        codes -1/-49/-57/-58/-59 seen, for 5m       critical
//                                       (the API codes count both endpoints together)
//   AivoiceAppPollsFailing              aivoice_up == 0 for 10m                     warning
//   AivoiceConfigReloadFailed           latest config reload failed, for 10m        warning
//   AivoiceDataStale                    last good poll older than 15m, for 5m       warning
//   AivoiceClockSkew                    code -4 seen, for 5m                        warning
//   AivoiceIpNotAllowed                 code -6 seen, for 5m                        warning
//   AivoiceAppMissing                   codes -37/-50 seen, for 5m                  warning
//   AivoiceApiErrorRatioHigh            > 10% of an endpoint's requests failing, 15m warning
//   AivoiceTaskStalled                  IN_PROCESS, completed unchanged for 30m     warning
//   AivoiceTaskFinishedLowCompletion    COMPLETED with completed/total < 50%        info
//   AivoiceCallRecordsFailing           aivoice_calls_up == 0 for 10m               warning
//   AivoiceAnswerRateLow                1h answer rate < half of a week earlier,
//                                       >= 100 calls in both hours, for 30m         warning
//   AivoiceLineFailing                  a line's FROM_PHONE_ERROR + SYSTEM_ERROR > 20%
//                                       of >= 20 calls on it in 15m, for 10m        warning
//   AivoiceLineAnswerRateLow            a line's 1h answer rate < half of the app's
//                                       other lines', >= 100 calls each, for 15m    warning
//   AivoiceCallLoss                     CALL_LOSS > 10% of >= 20 calls in 15m,
//                                       for 15m                                     warning
//   AivoicePushRejected                 >= 5 push answers 404 in 10m, or any push
//                                       record rejected in 10m, for 10m             warning
//   AivoicePushForwardsFailing          > 10% of forwarded pushes failing in 10m,
//                                       for 15m                                     warning
//   AivoiceStorageWritesFailing         call-state writes failing, none succeeding,
//                                       for 15m                                     warning
//   AivoiceBalanceRunningOut            balance reaches 0 within 24h at the last 6h's
//                                       trend, no top-up in those 6h, for 30m       warning
//   AivoiceBalanceExhausted             balance <= 0, or the API answers -3, for 5m critical
//   AivoiceBalanceUnavailable           aivoice_account_balance_up == 0 for 30m     warning
//   AivoiceShardMissing                 a shard with no live process, for 5m        critical
//   AivoiceShardingMismatch             processes disagree on --total-shards, 15m   critical
//   AivoiceShardDegraded                a shard down to one live replica, for 15m   warning
local lib = import '../lib/promql.libsonnet';
local folded = lib.folded;

{
  prometheusAlerts+:: {
    local c = $._config,
    local v = lib.vars(c),
    // What the descriptions say of _config's numbers, in words.
    local t = lib.text(c) {
      configReloadFailedMinutes: lib.minutes(c.configReloadFailedFor),
      answerRateShare:
        if c.answerRateLowFactor == 0.5 then 'half' else lib.percent(c.answerRateLowFactor),
      answerRateShareOfThe:
        if c.answerRateLowFactor == 0.5 then 'half the' else self.answerRateShare + ' of the',
      lineAnswerRateShare:
        if c.lineAnswerRateLowFactor == 0.5 then 'half' else lib.percent(c.lineAnswerRateLowFactor),
      lineAnswerRateShareOfThe:
        if c.lineAnswerRateLowFactor == 0.5 then 'half the' else self.lineAnswerRateShare + ' of the',
      balanceRunningOutHorizon:
        if c.balanceRunningOutHorizonSeconds == 86400 then 'a day'
        else lib.words(c.balanceRunningOutHorizonSeconds),
    },
    local runbook(name) = $._config.runbookURLPattern % std.asciiLower(name),
    // A per-line expression with the line's name (`line`, from channelList) joined on; a line
    // that channelList does not list keeps its id alone. One name per line (topk): a line
    // renamed a moment ago has two until the old series goes stale.
    local withLineName(expr) = '(\n' + expr + ')\n' + |||
      * on (%(job)s, app_id, line_id) group_left (line) (
        topk by (%(job)s, app_id, line_id) (1, app_id_line_id:aivoice_line_info:max)
        or on (%(job)s, app_id, line_id)
          0 * app_id_line_id:aivoice_line_call_results:increase1h + 1
      )
    ||| % v,
    // The line as the annotations name it: its name and id, or its id when it has no name.
    local line = '{{ with $labels.line }}{{ . }} ({{ $labels.line_id }}){{ else }}{{ $labels.line_id }}{{ end }}',
    groups+: [
      {
        name: 'aivoice.alerts',
        rules: [
          {
            alert: 'AivoiceExporterDown',
            // A process that has a live replica of its shard (the shard it served last, in the
            // last day) is left to AivoiceShardDegraded: its apps are still watched.
            expr: |||
              up{%(upSelector)s} == 0
              unless on (%(job)s, %(replicas)s)
                (
                  count_values by (%(job)s, %(replicas)s) ("shard", last_over_time(aivoice_exporter_shard%(sel)s[1d]))
                  and on (%(job)s, shard)
                    shard:aivoice_exporter_shard:count
                )
            ||| % v,
            'for': c.exporterDownFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'aivoice exporter {{ $labels.instance }} is down',
              description: folded(|||
                Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for
                %(exporterDownFor)s, and no other process serves its shard. No AI-voice data is
                being collected and no other aivoice alert can fire for the apps it polls.
              ||| % t),
              runbook_url: runbook('AivoiceExporterDown'),
            },
          },
          {
            alert: 'AivoiceAuthenticationFailing',
            // The API-code alerts sum over `endpoint`: one alert per app and code, whether taskList
            // or recordQuery got the answer.
            expr: |||
              sum by (%(job)s, app_id, code) (max without (%(replicas)s) (
                increase(aivoice_api_errors_total{%(selAnd)sapp_id!="", code=~"-1|-49|-57|-58|-59"}[5m])
              )) > 0
            ||| % v,
            'for': c.authenticationFailingFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: authentication failing (code {{ $labels.code }})',
              description: folded(|||
                The API answered code {{ $labels.code }} to about {{ $value | printf "%%.0f" }}
                requests for app {{ $labels.app_id }} (from each replica) in the last 5 minutes, and
                has kept doing so for %(authenticationFailingFor)s (-1 wrong api_key/api_secret, -49
                account not authenticated, -57/-58/-59 Sign/Timestamp/Api-Key header empty). No data
                is collected for this app until it is fixed.
              ||| % t),
              runbook_url: runbook('AivoiceAuthenticationFailing'),
            },
          },
          {
            alert: 'AivoiceAppPollsFailing',
            // Every replica's polls: one replica failing alone leaves the app watched by the other.
            expr: |||
              max without (%(replicas)s) (aivoice_up%(sel)s) == 0
            ||| % v,
            'for': c.appPollsFailingFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: polls failing',
              description: folded(|||
                Every poll of app {{ $labels.app_id }} (by every replica that polls it) has failed
                for %(appPollsFailingFor)s. The exporter keeps serving the app's last good data
                until poll.stale_after_seconds, then drops its task series. The error codes are in
                aivoice_api_errors_total{endpoint="taskList"} and in the exporter's log.
              ||| % t),
              runbook_url: runbook('AivoiceAppPollsFailing'),
            },
          },
          {
            alert: 'AivoiceConfigReloadFailed',
            expr: |||
              aivoice_config_last_reload_successful%(sel)s == 0
            ||| % v,
            'for': c.configReloadFailedFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'aivoice exporter {{ $labels.instance }}: config reload failed',
              description: folded(|||
                The latest config reload of {{ $labels.instance }} failed
                %(configReloadFailedMinutes)s or more minutes ago. The exporter keeps running the
                previous config, so the change is not in effect, and the next restart will fail with
                the same error.
              ||| % t),
              runbook_url: runbook('AivoiceConfigReloadFailed'),
            },
          },
          {
            alert: 'AivoiceDataStale',
            expr: |||
              app_id:aivoice_poll_last_success_age_seconds:value > %(dataStaleSeconds)s
            ||| % v,
            'for': c.dataStaleFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: data is stale',
              description: folded(|||
                The last clean poll of app {{ $labels.app_id }} (by any replica) was {{ $value |
                humanizeDuration }} ago (threshold %(dataStaleSeconds)s). Either its polls fail or
                the exporter's poller has stopped.
              ||| % t),
              runbook_url: runbook('AivoiceDataStale'),
            },
          },
          {
            alert: 'AivoiceClockSkew',
            // Per process: the clock is its host's, so each replica is told apart.
            expr: |||
              sum by (%(job)s, %(replicas)s, app_id, code) (increase(aivoice_api_errors_total{%(selAnd)scode="-4"}[5m])) > 0
            ||| % v,
            'for': c.clockSkewFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: Timestamp rejected, host clock is probably off',
              description: folded(|||
                The API answered -4 (timestamp expired) to about {{ $value | printf "%.0f" }}
                requests for app {{ $labels.app_id }} from {{ $labels.instance }} in the last 5
                minutes. The signed Timestamp comes from the exporter host's clock: check its time
                sync.
              |||),
              runbook_url: runbook('AivoiceClockSkew'),
            },
          },
          {
            alert: 'AivoiceIpNotAllowed',
            // Per process: the egress IP is its node's, so each replica is told apart.
            expr: |||
              sum by (%(job)s, %(replicas)s, app_id, code) (increase(aivoice_api_errors_total{%(selAnd)scode="-6"}[5m])) > 0
            ||| % v,
            'for': c.ipNotAllowedFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: exporter IP not allowed',
              description: folded(|||
                The API answered -6 (restricted IP access) to about {{ $value | printf "%.0f" }}
                requests for app {{ $labels.app_id }} from {{ $labels.instance }} in the last 5
                minutes. The exporter's public egress IP is not on the account's IP allow list.
              |||),
              runbook_url: runbook('AivoiceIpNotAllowed'),
            },
          },
          {
            alert: 'AivoiceAppMissing',
            expr: |||
              sum by (%(job)s, app_id, code) (max without (%(replicas)s) (
                increase(aivoice_api_errors_total{%(selAnd)scode=~"-37|-50"}[5m])
              )) > 0
            ||| % v,
            'for': c.appMissingFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: app missing or not set up (code {{ $labels.code }})',
              description: folded(|||
                The API answered {{ $labels.code }} to about {{ $value | printf "%.0f" }} requests
                for app {{ $labels.app_id }} (from each replica) in the last 5 minutes (-37 the
                application does not exist, -50 the application is not quoted). Check app_ids in the
                exporter's config against the vendor console.
              |||),
              runbook_url: runbook('AivoiceAppMissing'),
            },
          },
          {
            alert: 'AivoiceApiErrorRatioHigh',
            // Per endpoint, so that one failing endpoint is not diluted by the other's successes.
            expr: |||
              app_id_endpoint:aivoice_api_errors:ratio_rate5m > %(apiErrorRatio)g
            ||| % v,
            'for': c.apiErrorRatioFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: {{ $value | humanizePercentage }} of {{ $labels.endpoint }} requests failing',
              description: folded(|||
                {{ $value | humanizePercentage }} of the {{ $labels.endpoint }} requests for app {{
                $labels.app_id }} failed over the last 5 minutes (the worse replica's share), above
                %(apiErrorRatio)s for %(apiErrorRatioFor)s (retries included). The codes are in
                aivoice_api_errors_total{endpoint="{{ $labels.endpoint }}"}.
              ||| % t),
              runbook_url: runbook('AivoiceApiErrorRatioHigh'),
            },
          },
          {
            alert: 'AivoiceTaskStalled',
            // The condition lives in rules.yml so that the dashboard shows the same tasks:
            // IN_PROCESS, completed count unchanged over 30m, task already known 30m ago, calls
            // left to make, and the app's polls succeeding.
            expr: |||
              app_id_job_id:aivoice_task_calls_completed:stalled30m
            ||| % v,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice task {{ $labels.name }} ({{ $labels.job_id }}) is running but makes no progress',
              description: folded(|||
                Task {{ $labels.name }} (job_id {{ $labels.job_id }}) of app {{ $labels.app_id }} is
                IN_PROCESS but its completed calls have stayed at {{ $value }} for 30 minutes.
              |||),
              runbook_url: runbook('AivoiceTaskStalled'),
            },
          },
          {
            alert: 'AivoiceTaskFinishedLowCompletion',
            // Fires for the first day after Prometheus sees the task COMPLETED, then clears.
            expr: |||
              (
                app_id_job_id:aivoice_task_progress:ratio
                * on (%(job)s, app_id, job_id) group_left (name)
                  max without (%(replicas)s) (aivoice_task_info{%(selAnd)sstatus="COMPLETED"})
              ) < %(taskFinishedLowCompletionRatio)g
              unless on (%(job)s, app_id, job_id)
                aivoice_task_info{%(selAnd)sstatus="COMPLETED"} offset 1d
            ||| % v,
            labels: { severity: 'info' },
            annotations: {
              summary: 'AI-voice task {{ $labels.name }} ({{ $labels.job_id }}) finished with {{ $value | humanizePercentage }} of its calls completed',
              description: folded(|||
                Task {{ $labels.name }} (job_id {{ $labels.job_id }}) of app {{ $labels.app_id }} is
                COMPLETED with only {{ $value | humanizePercentage }} of its calls completed
                (threshold %(taskFinishedLowCompletionRatio)s).
              ||| % t),
              runbook_url: runbook('AivoiceTaskFinishedLowCompletion'),
            },
          },
          {
            alert: 'AivoiceCallRecordsFailing',
            // recordQuery failures never touch aivoice_up: this is their AivoiceAppPollsFailing.
            expr: |||
              max without (%(replicas)s) (aivoice_calls_up%(sel)s) == 0
            ||| % v,
            'for': c.callRecordsFailingFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: call record polls failing',
              description: folded(|||
                Every recordQuery poll of app {{ $labels.app_id }} (by every replica that polls it)
                has failed for %(callRecordsFailingFor)s. Task metrics are unaffected; until the
                polls recover, call outcomes come only from the push, if it is set up. The error
                codes are in aivoice_api_errors_total{endpoint="recordQuery"}.
              ||| % t),
              runbook_url: runbook('AivoiceCallRecordsFailing'),
            },
          },
          {
            alert: 'AivoiceAnswerRateLow',
            // Against the app's own level a week earlier (same hour of the same weekday), not a
            // fixed number: answer rates differ by audience and hour. Both hours need 100 calls.
            expr: |||
              app_id:aivoice_call_results_answered:ratio_increase1h
                < %(answerRateLowFactor)g * app_id:aivoice_call_results_answered:ratio_increase1h offset 1w
              and on (%(job)s, app_id)
                app_id:aivoice_call_results:increase1h >= %(answerRateMinCalls)s
              and on (%(job)s, app_id)
                app_id:aivoice_call_results:increase1h offset 1w >= %(answerRateMinCalls)s
            ||| % v,
            'for': c.answerRateLowFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: answer rate {{ $value | humanizePercentage }}, under %(answerRateShare)s of last week\'s' % t,
              description: folded(|||
                Only {{ $value | humanizePercentage }} of the calls of app {{ $labels.app_id }} that
                ended in the last hour were answered, less than %(answerRateShareOfThe)s rate of the
                same hour a week earlier, for %(answerRateLowFor)s. The outcomes are in
                aivoice_call_results_total.
              ||| % t),
              runbook_url: runbook('AivoiceAnswerRateLow'),
            },
          },
          {
            alert: 'AivoiceLineFailing',
            // Per line (aivoice_line_call_results_total), named: the line to pull.
            expr: withLineName(|||
              app_id_line_id:aivoice_line_call_results_line_fault:ratio_increase15m > %(lineFaultRatio)g
              and app_id_line_id:aivoice_line_call_results:increase15m >= %(lineFaultMinCalls)s
            ||| % v),
            'for': c.lineFailingFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: {{ $value | humanizePercentage }} of the calls on line %s fail on the line' % line,
              description: folded(|||
                {{ $value | humanizePercentage }} of the calls on line %(line)s of app {{ $labels.app_id }} that
                ended in the last 15 minutes failed with
                FROM_PHONE_ERROR or SYSTEM_ERROR, above %(lineFaultRatio)s for %(lineFailingFor)s: the line is
                in arrears or down, or the platform is at fault. The numbers dialled are used up.
              ||| % (t { line: line })),
              runbook_url: runbook('AivoiceLineFailing'),
            },
          },
          {
            alert: 'AivoiceLineAnswerRateLow',
            // Against the app's other lines over the same hour: they call the same audience at
            // the same time, so a line far below them is labelled or blocked on its own.
            expr: withLineName(|||
              app_id_line_id:aivoice_line_call_results_answered:ratio_increase1h{line_id!="other"}
                < %(lineAnswerRateLowFactor)g * app_id_line_id:aivoice_line_call_results_answered_other_lines:ratio_increase1h
              and app_id_line_id:aivoice_line_call_results:increase1h >= %(lineAnswerRateMinCalls)s
              and app_id_line_id:aivoice_line_call_results_other_lines:increase1h >= %(lineAnswerRateMinCalls)s
            ||| % v),
            'for': c.lineAnswerRateLowFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: line %s answers {{ $value | humanizePercentage }}, under %s of the app\'s other lines\' share' % [line, t.lineAnswerRateShare],
              description: folded(|||
                Only {{ $value | humanizePercentage }} of the calls on line %(line)s of app
                {{ $labels.app_id }} that ended in the last hour were answered, less than
                %(lineAnswerRateShareOfThe)s share of the app's other lines, for %(lineAnswerRateLowFor)s: carriers
                may be labelling the number as spam, or its account is in arrears. The outcomes by line
                are in aivoice_line_call_results_total.
              ||| % (t { line: line })),
              runbook_url: runbook('AivoiceLineAnswerRateLow'),
            },
          },
          {
            alert: 'AivoiceCallLoss',
            expr: |||
              app_id:aivoice_call_results_call_loss:ratio_increase15m > %(callLossRatio)g
              and on (%(job)s, app_id)
                app_id:aivoice_call_results:increase15m >= %(callLossMinCalls)s
            ||| % v,
            'for': c.callLossFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice app {{ $labels.app_id }}: {{ $value | humanizePercentage }} of calls lost for want of an AI seat',
              description: folded(|||
                {{ $value | humanizePercentage }} of the calls of app {{ $labels.app_id }} that
                ended in the last 15 minutes ended as CALL_LOSS, above %(callLossRatio)s for
                %(callLossFor)s: calls were connected with no free AI concurrency to take them.
              ||| % t),
              runbook_url: runbook('AivoiceCallLoss'),
            },
          },
          {
            alert: 'AivoicePushRejected',
            // Two causes, told apart by `reason`: answers 404 (a wrong token or path in the
            // vendor's console; scanners get 404 too, hence at least 5), and records the exporter
            // turned away (an app not in the config, which carries no app_id, or an unreadable body).
            // Summed over the job's processes: a push from the vendor lands on one of them, which
            // answers it, and a record it cannot place is rejected there, never handed on. Only
            // the answers to the vendor: a push handed on is answered again by each owner
            // (sender="peer"), and a peer refused is AivoicePushForwardsFailing's.
            expr: |||
              label_replace(
                sum by (%(job)s) (increase(aivoice_push_requests_total{%(selAnd)ssender="vendor", code="404"}[10m])) >= %(pushNotFoundMin)s,
                "reason", "not_found", "", ""
              )
              or
              label_replace(
                sum by (%(job)s) (
                  increase(aivoice_call_records_total{%(selAnd)ssource="push", outcome="rejected"}[10m])
                ) > 0,
                "reason", "record_rejected", "", ""
              )
            ||| % v,
            'for': c.pushRejectedFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'aivoice job {{ $labels.job }}: call-record pushes rejected ({{ $labels.reason }})',
              description: folded(|||
                About {{ $value | printf "%%.0f" }} call-record pushes to job {{ $labels.job }} were
                turned away in the last 10 minutes, for %(pushRejectedFor)s (not_found: answered
                404, the URL's token or path is wrong; record_rejected: a record for an app not in
                the config, or one that could not be read). Those calls are not counted.
              ||| % t),
              runbook_url: runbook('AivoicePushRejected'),
            },
          },
          {
            alert: 'AivoicePushForwardsFailing',
            // With push.peers: the share of the pushes handed on to the processes that own them
            // that failed. Summed over the job's processes: each forward is made, and counted,
            // by the one process the vendor's push landed on, so the replicas count it once.
            // A share, not a count: a replica restarted in a rollout fails a few forwards, and
            // the vendor's retries make up for them.
            expr: |||
              sum by (%(job)s) (increase(aivoice_push_forwards_total{%(selAnd)sresult="failure"}[10m]))
              /
              sum by (%(job)s) (increase(aivoice_push_forwards_total{%(selAnd)sresult=~"success|failure"}[10m]))
              > %(pushForwardFailureRatio)g
            ||| % v,
            'for': c.pushForwardsFailingFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'aivoice job {{ $labels.job }}: {{ $value | humanizePercentage }} of forwarded pushes fail',
              description: folded(|||
                {{ $value | humanizePercentage }} of the pushes the processes of job
                {{ $labels.job }} handed on to the replicas that own them failed in the last 10
                minutes, above %(pushForwardFailureRatio)s for %(pushForwardsFailingFor)s. The vendor is answered
                503 and retries; until a retry gets through, an owner that did not get the push
                misses the call's cost (the call itself still comes through recordQuery).
              ||| % t),
              runbook_url: runbook('AivoicePushForwardsFailing'),
            },
          },
          {
            alert: 'AivoiceStorageWritesFailing',
            // Only with --storage.path. Writes follow every app's poll, so 15 minutes without a
            // success while failures come is a state directory that cannot be written (disk full,
            // read-only volume), not one unlucky write. Per process: each replica has its own disk.
            expr: |||
              sum by (%(job)s, %(replicas)s) (increase(aivoice_storage_writes_total{%(selAnd)sresult="failure"}[15m])) > 0
              unless
              sum by (%(job)s, %(replicas)s) (increase(aivoice_storage_writes_total{%(selAnd)sresult="success"}[15m])) > 0
            ||| % v,
            'for': c.storageWritesFailingFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'aivoice exporter {{ $labels.instance }}: the call state cannot be written',
              description: folded(|||
                About {{ $value | printf "%%.0f" }} writes of the call state on {{ $labels.instance
                }} failed in the last 15 minutes and none succeeded, for
                %(storageWritesFailingFor)s. The exporter keeps counting, but a restart now resumes
                from an old state: calls that ended while it was down may be missed or counted
                again.
              ||| % t),
              runbook_url: runbook('AivoiceStorageWritesFailing'),
            },
          },
          {
            alert: 'AivoiceBalanceRunningOut',
            // The fall over the last 6 hours, extended 24 hours, as node_exporter's filesystem
            // alerts do. A top-up bends that fit for as long as it is in the window (right after a
            // top-up, hours of old fall still outweigh it and would say zero): an account topped up
            // in the last 6 hours is left alone until the top-up has left the window.
            expr: |||
              (
                  max without (%(replicas)s)
                  (predict_linear(aivoice_account_balance{%(selAnd)skind="balance"}[6h], %(balanceRunningOutHorizonSeconds)g)) <= 0
                and
                  max without (%(replicas)s) (aivoice_account_balance{%(selAnd)skind="balance"}) > 0
              )
              unless on (%(job)s, account)
                resets(account:aivoice_account_balance:negated[6h]) > 0
            ||| % v,
            'for': c.balanceRunningOutFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice account {{ $labels.account }}: balance runs out within %(balanceRunningOutHorizon)s' % t,
              description: folded(|||
                At the rate it fell over the last 6 hours, the balance of account {{ $labels.account
                }} reaches zero within %(balanceRunningOutHorizonSeconds)s (predicted {{ $value |
                printf "%%.2f" }} in %(balanceRunningOutHorizonSeconds)s). When it does, calls fail
                with FROM_PHONE_ERROR and new tasks get -3. Top up the account.
              ||| % t),
              runbook_url: runbook('AivoiceBalanceRunningOut'),
            },
          },
          {
            alert: 'AivoiceBalanceExhausted',
            // Either sign: the balance at or below zero, or the API refusing for want of money
            // (-3 on the aivoice endpoints; getBalance's codes are the SMS API's).
            expr: |||
              max without (%(replicas)s) (aivoice_account_balance{%(selAnd)skind="balance"}) <= 0
              or
              sum by (%(job)s, app_id) (max without (%(replicas)s) (
                increase(aivoice_api_errors_total{%(selAnd)scode="-3", endpoint!="getBalance"}[10m])
              )) > 0
            ||| % v,
            'for': c.balanceExhaustedFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'AI-voice {{ with $labels.account }}account {{ . }}{{ else }}app {{ $labels.app_id }}{{ end }}: balance exhausted',
              description: folded(|||
                {{ if $labels.account }}The balance of account {{ $labels.account }} is {{ $value |
                printf "%.2f" }}{{ else }}The API answered -3 (insufficient balance) to about {{
                $value | printf "%.0f" }} requests for app {{ $labels.app_id }} in the last 10
                minutes{{ end }}. Calls fail with FROM_PHONE_ERROR and new tasks are refused until
                the account is topped up.
              |||),
              runbook_url: runbook('AivoiceBalanceExhausted'),
            },
          },
          {
            alert: 'AivoiceBalanceUnavailable',
            expr: |||
              max without (%(replicas)s) (aivoice_account_balance_up%(sel)s) == 0
            ||| % v,
            'for': c.balanceUnavailableFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'AI-voice account {{ $labels.account }}: balance query failing',
              description: folded(|||
                The balance query (getBalance) of account {{ $labels.account }} has failed on every
                replica for %(balanceUnavailableFor)s. The last good balance is kept for
                poll.stale_after_seconds, then dropped, and the balance alerts go blind. The codes
                are in aivoice_api_errors_total{endpoint="getBalance"}.
              ||| % t),
              runbook_url: runbook('AivoiceBalanceUnavailable'),
            },
          },
          {
            alert: 'AivoiceShardMissing',
            // A shard served in the last day, below the latest --total-shards, with no live
            // process now (named, `shard`); or, for shards not seen in the last day (a
            // StatefulSet with fewer pods than shards), how many there are (shard "unknown").
            expr: |||
              shard:aivoice_exporter_shard:missing
              or
              label_replace(
                  job:aivoice_exporter_total_shards:max
                - count by (%(job)s) (shard:aivoice_exporter_shard:count)
                > 0,
                "shard", "unknown", "", ""
              )
              unless on (%(job)s)
                shard:aivoice_exporter_shard:missing
            ||| % v,
            'for': c.shardMissingFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'aivoice job {{ $labels.job }}: {{ if eq $labels.shard "unknown" }}{{ $value }} shard(s){{ else }}shard {{ $labels.shard }}{{ end }} with no live process',
              description: folded(|||
                {{ if eq $labels.shard "unknown" }}{{ $value }} of the job's shards, never served in
                the last day, have{{ else }}Shard {{ $labels.shard }} has{{ end }} had no live
                process (none answering its scrape) for %(shardMissingFor)s. The accounts hashed to
                it are not polled, their pushes are not counted, and no other alert fires for them.
              ||| % t),
              runbook_url: runbook('AivoiceShardMissing'),
            },
          },
          {
            alert: 'AivoiceShardingMismatch',
            // One alert per --total-shards value in use, while the job's processes use two or
            // more. Value: how many live processes use that one. A rollout that changes the count
            // passes through this for a few minutes, hence the 15.
            expr: |||
              count_values by (%(job)s) ("total_shards", aivoice_exporter_total_shards%(sel)s)
              and on (%(job)s)
                count by (%(job)s) (count_values by (%(job)s) ("total_shards", aivoice_exporter_total_shards%(sel)s)) > 1
            ||| % v,
            'for': c.shardingMismatchFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'aivoice job {{ $labels.job }}: processes disagree on --total-shards',
              description: folded(|||
                {{ $value }} live process(es) of job {{ $labels.job }} run with --total-shards {{
                $labels.total_shards }}, and others with another count, for %(shardingMismatchFor)s.
                Each process hashes the accounts over its own count: some accounts are polled and
                counted twice, others by no process.
              ||| % t),
              runbook_url: runbook('AivoiceShardingMismatch'),
            },
          },
          {
            alert: 'AivoiceShardDegraded',
            // Down to one: a shard with one live process that had more in the last day, or while
            // another shard of the job has more (a permanent loss is still told after a day).
            expr: |||
              (
                  shard:aivoice_exporter_shard:count == 1
                and on (%(job)s, shard)
                  max_over_time(shard:aivoice_exporter_shard:count[1d]) > 1
              )
              or
              (
                  shard:aivoice_exporter_shard:count == 1
                and on (%(job)s)
                  max by (%(job)s) (shard:aivoice_exporter_shard:count) > 1
              )
            ||| % v,
            'for': c.shardDegradedFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'aivoice job {{ $labels.job }}: shard {{ $labels.shard }} down to one replica',
              description: folded(|||
                Only {{ $value }} process of job {{ $labels.job }} has served shard {{ $labels.shard
                }} for %(shardDegradedFor)s; its other replica is down or gone. Nothing is missing
                yet, but the next restart of the last one (a node drain, an upgrade) leaves the
                shard's accounts unwatched.
              ||| % t),
              runbook_url: runbook('AivoiceShardDegraded'),
            },
          },
        ],
      },
    ],
  },
}
