// Small builders for the dashboard's panels, rows and variables: each panel is one call with
// its id, title, description and queries, plus what sets it apart (`+ p.unit(...)`, a patch).
local lib = import '../lib/promql.libsonnet';

local datasource = { type: 'prometheus', uid: '${datasource}' };

// What every panel of a type shares; a panel's patch changes any of it.
local bases = {
  stat: {
    fieldConfig: { defaults: { mappings: [], color: { mode: 'thresholds' } }, overrides: [] },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'background',
      graphMode: 'none',
      justifyMode: 'auto',
      orientation: 'auto',
      textMode: 'value_and_name',
      wideLayout: true,
      showPercentChange: false,
    },
  },
  timeseries: {
    fieldConfig: {
      defaults: {
        mappings: [],
        color: { mode: 'palette-classic' },
        custom: {
          drawStyle: 'line',
          lineWidth: 1,
          fillOpacity: 10,
          gradientMode: 'none',
          showPoints: 'never',
          spanNulls: false,
          axisSoftMin: 0,
          stacking: { mode: 'none', group: 'A' },
          thresholdsStyle: { mode: 'off' },
        },
      },
      overrides: [],
    },
    options: {
      legend: {
        showLegend: true,
        displayMode: 'table',
        placement: 'bottom',
        calcs: ['lastNotNull', 'max'],
      },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  },
  bargauge: {
    fieldConfig: {
      defaults: { mappings: [], color: { mode: 'thresholds' }, min: 0, decimals: 0 },
      overrides: [],
    },
    options: {
      displayMode: 'basic',
      orientation: 'horizontal',
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      showUnfilled: true,
      valueMode: 'color',
      namePlacement: 'auto',
      sizing: 'auto',
      minVizHeight: 16,
      minVizWidth: 8,
      maxVizHeight: 300,
    },
  },
  table: {
    fieldConfig: {
      defaults: {
        mappings: [],
        color: { mode: 'thresholds' },
        custom: {
          align: 'auto',
          cellOptions: { type: 'auto' },
          filterable: true,
          inspect: false,
        },
      },
      overrides: [],
    },
    options: {
      showHeader: true,
      cellHeight: 'sm',
      footer: { show: false, reducer: ['sum'], countRows: false, fields: '' },
    },
  },
};

{
  datasource:: datasource,

  // A panel of `type`: its description is written over several lines and shown as one; its
  // queries get refIds A, B, C... in order (the table columns name them).
  panel(type, id, title, description, targets):: bases[type] {
    type: type,
    id: id,
    title: title,
    description: lib.folded(description),
    datasource: datasource,
    targets: [
      targets[i] { refId: std.char(std.codepoint('A') + i) }
      for i in std.range(0, std.length(targets) - 1)
    ],
  },
  stat(id, title, description, targets):: self.panel('stat', id, title, description, targets),
  timeseries(id, title, description, targets)::
    self.panel('timeseries', id, title, description, targets),
  bargauge(id, title, description, targets)::
    self.panel('bargauge', id, title, description, targets),
  table(id, title, description, targets):: self.panel('table', id, title, description, targets),

  // Queries: over the dashboard's time range, at its end only, or as a table's columns.
  target(expr, legend, instant):: {
    datasource: datasource,
    editorMode: 'code',
    expr: expr,
    legendFormat: legend,
    range: !instant,
    instant: instant,
  },
  range(expr, legend):: self.target(expr, legend, false),
  instant(expr, legend):: self.target(expr, legend, true),
  tableTarget(expr):: self.target(expr, '__auto', true) { format: 'table' },

  // Where the panel sits: x and width in the 24 columns, its top `dy` rows below its row's.
  at(x, dy, w, h):: { gridPos: { x: x, w: w, h: h, dy:: dy } },
  unit(unit):: { fieldConfig+: { defaults+: { unit: unit } } },
  // Threshold steps as [color, from] pairs, the first from null (-infinity).
  steps(pairs):: {
    fieldConfig+: {
      defaults+: {
        thresholds: {
          mode: 'absolute',
          steps: [{ color: pair[0], value: pair[1] } for pair in pairs],
        },
      },
    },
  },
  // Value -> text and color, e.g. { '0': ['DOWN', 'red'] }.
  valueMappings(texts):: {
    fieldConfig+: {
      defaults+: {
        mappings: [{
          type: 'value',
          options: {
            [value]: { text: texts[value][0], color: texts[value][1], index: std.parseInt(value) }
            for value in std.objectFields(texts)
          },
        }],
      },
    },
  },

  // A row and the panels under it; `layout` stacks the rows down the page, each as tall as
  // its lowest panel, and gives every panel its absolute place.
  row(id, title, panels):: { id: id, title: title, panels: panels },
  layout(rows)::
    local heights = [
      1 + std.foldl(function(low, p) std.max(low, p.gridPos.dy + p.gridPos.h), row.panels, 0)
      for row in rows
    ];
    local tops = [std.foldl(function(a, b) a + b, heights[0:i], 0) for i in std.range(0, std.length(rows) - 1)];
    std.flattenArrays([
      [{
        type: 'row',
        id: rows[i].id,
        title: rows[i].title,
        collapsed: false,
        gridPos: { h: 1, w: 24, x: 0, y: tops[i] },
        panels: [],
      }] + [
        p { gridPos: { x: p.gridPos.x, w: p.gridPos.w, h: p.gridPos.h, y: tops[i] + 1 + p.gridPos.dy } }
        for p in rows[i].panels
      ]
      for i in std.range(0, std.length(rows) - 1)
    ]),

  // A template variable of label values, several of them selectable (or All, by `allValue`).
  variable(name, label, query, multi=true, allValue=null):: {
    type: 'query',
    name: name,
    label: label,
    datasource: datasource,
    definition: query,
    query: {
      qryType: 1,
      query: query,
      refId: 'PrometheusVariableQueryEditor-VariableQuery',
    },
    refresh: 2,
    regex: '',
    sort: 1,
    multi: multi,
    includeAll: multi,
    current: if multi then { selected: true, text: ['All'], value: ['$__all'] } else {},
    options: [],
    hide: 0,
    skipUrlSync: false,
    [if allValue != null then 'allValue']: allValue,
  },
  datasourceVariable:: {
    type: 'datasource',
    name: 'datasource',
    label: 'Data source',
    query: 'prometheus',
    regex: '',
    refresh: 1,
    hide: 0,
    multi: false,
    includeAll: false,
    current: {},
    options: [],
    skipUrlSync: false,
  },
}
