// Helpers shared by the rules, the alerts and the dashboard: the PromQL fragments that depend on
// _config, and the small text functions the annotations are written with.
{
  // The fragments the rules and alerts write as %(name)s, with every _config key as well:
  //   replicas    the labels the replicas differ by, for `max without (%(replicas)s)`
  //   job         `job`, after the cluster label when showMultiCluster: every `by` and `on`
  //               lists it first, so that no rule adds up two clusters
  //   sel         the exporter's selector as a whole, for a bare name: `aivoice_up%(sel)s`
  //   selAnd      the same as the first matchers of a selector: `aivoice_tasks{%(selAnd)sstatus="X"}`
  vars(config):: config {
    replicas: std.join(', ', config.replicaLabels),
    job: std.join(', ', self.clusterLabels + ['job']),
    clusterLabels:: if config.showMultiCluster then [config.clusterLabel] else [],
    sel: if config.aivoiceSelector == '' then '' else '{%s}' % config.aivoiceSelector,
    selAnd: if config.aivoiceSelector == '' then '' else config.aivoiceSelector + ', ',
  },

  // A paragraph written over several lines, as one line (what YAML's `>-` makes of it).
  folded(text):: std.join(' ', std.split(std.rstripChars(text, '\n'), '\n')),

  // A duration in words, for the alerts' descriptions: a Prometheus duration ('5m', '1h') or
  // a number of seconds (900: '15 minutes').
  words(duration)::
    local units = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week' };
    local split =
      if std.isNumber(duration) then (
        if duration % 3600 == 0 then [duration / 3600, 'h']
        else if duration % 60 == 0 then [duration / 60, 'm']
        else [duration, 's']
      ) else [
        std.parseInt(duration[0:std.length(duration) - 1]),
        duration[std.length(duration) - 1],
      ];
    '%d %s%s' % [split[0], units[split[1]], if split[0] == 1 then '' else 's'],

  // The number of minutes of a duration ('1h': 60).
  minutes(duration)::
    local count = std.parseInt(duration[0:std.length(duration) - 1]);
    count * { m: 1, h: 60, d: 1440 }[duration[std.length(duration) - 1]],

  // _config's numbers as the descriptions say them: durations (`...For`, `...Seconds`) in
  // words, ratios (`...Ratio`) as percentages, the others as they are.
  text(config):: {
    [key]:
      if std.endsWith(key, 'For') || std.endsWith(key, 'Seconds') then $.words(config[key])
      else if std.endsWith(key, 'Ratio') then $.percent(config[key])
      else config[key]
    for key in std.objectFields(config)
  },

  // A ratio (0.1) as a percentage (10%).
  percent(ratio):: '%d%%' % std.round(ratio * 100),
}
