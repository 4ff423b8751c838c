// aivoice-exporter's monitoring mixin: prometheusRules, prometheusAlerts and grafanaDashboards,
// all written from _config (config.libsonnet). `make mixin` renders it with the defaults into
// prometheus/, grafana/ and deploy/kubernetes/.
(import 'config.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
