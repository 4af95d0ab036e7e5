local k = import 'k.libsonnet';
local cfg = std.extVar('config');
{
  cm: k.cm('ext', { commit: std.extVar('commit_hash'), region: cfg.region, zones: std.join(',', cfg.zones), both: std.extVar('both') }),
}
