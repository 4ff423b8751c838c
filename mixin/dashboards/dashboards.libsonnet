// The mixin's dashboards, by file name.
(import 'aivoice.libsonnet')
