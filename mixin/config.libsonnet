// The mixin's settings. Override any of them with `mixin { _config+:: { key: value } }`.
{
  _config+:: {
    // Label matchers added to every selector of an exporter series, e.g. 'job="aivoice"'
    // (empty: every aivoice_ series). Recorded series are not filtered again: they come from
    // these selectors.
    aivoiceSelector: '',
    // The labels that tell the replicas of one shard apart (the target labels of each process,
    // or a Thanos/Mimir replica label): the rules keep one series per value of the others
    // with `max without (...)` over these.
    replicaLabels: ['instance', 'pod'],
    // A `cluster` variable on the dashboard (one cluster at a time), and clusterLabel kept
    // in every `by` and `on` of the rules and alerts.
    showMultiCluster: false,
    clusterLabel: 'cluster',
    // The scrape targets AivoiceExporterDown watches (`up` carries no aivoice_ name).
    upSelector: if self.aivoiceSelector == '' then 'job="aivoice"' else self.aivoiceSelector,
    // Every alert's runbook_url: %s is the alert's name in lower case (the runbook's anchor).
    runbookURLPattern: 'https://github.com/aivoice-exporter/aivoice-exporter/blob/main/docs/runbook.md#%s',

    // The dashboard.
    dashboardUid: 'aivoice-exporter',
    dashboardTitle: 'AI-voice (ITNIO) exporter',
    dashboardTags: ['aivoice', 'itnio', 'prometheus'],
    refresh: '1m',
    // Where the dashboard's "Runbooks" link points.
    dashboardRunbookLink: 'https://github.com/aivoice-exporter/aivoice-exporter/blob/main/README.md#alerts',

    // Every alert's numbers: thresholds (ratios 0..1, counts, seconds) and `for` durations.
    exporterDownFor: '5m',
    authenticationFailingFor: '5m',
    appPollsFailingFor: '10m',
    configReloadFailedFor: '10m',
    dataStaleSeconds: 900,
    dataStaleFor: '5m',
    clockSkewFor: '5m',
    ipNotAllowedFor: '5m',
    appMissingFor: '5m',
    apiErrorRatio: 0.1,
    apiErrorRatioFor: '15m',
    taskFinishedLowCompletionRatio: 0.5,
    callRecordsFailingFor: '10m',
    answerRateLowFactor: 0.5,  // of the same hour's rate a week earlier
    answerRateMinCalls: 100,  // calls ended in each of the two hours
    answerRateLowFor: '30m',
    lineFaultRatio: 0.2,
    lineFaultMinCalls: 20,  // calls ended in 15 minutes
    lineFailingFor: '10m',
    lineAnswerRateLowFactor: 0.5,  // of the share of the app's other lines, over the last hour
    lineAnswerRateMinCalls: 100,  // calls ended in the hour on the line, and on the others
    lineAnswerRateLowFor: '15m',
    callLossRatio: 0.1,
    callLossMinCalls: 20,  // calls ended in 15 minutes
    callLossFor: '15m',
    pushNotFoundMin: 5,  // push answers 404 in 10 minutes
    pushRejectedFor: '10m',
    pushForwardFailureRatio: 0.1,  // of the pushes handed on to their owners in 10 minutes
    pushForwardsFailingFor: '15m',
    storageWritesFailingFor: '15m',
    balanceRunningOutHorizonSeconds: 24 * 3600,
    balanceRunningOutFor: '30m',
    balanceExhaustedFor: '5m',
    balanceUnavailableFor: '30m',
    shardMissingFor: '5m',
    shardingMismatchFor: '15m',
    shardDegradedFor: '15m',
  },
}
