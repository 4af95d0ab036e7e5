local n = import 'natives.libsonnet';
local k = import 'k.libsonnet';
local doc = { b: [1, { c: 'yes', d: [] }], a: 'x\ny', 'a10': 1, a9: 2, num: 1000000 };
{
  cm: k.cm('natives', {
    yaml: n.manifestYamlFromJson(std.manifestJsonEx(doc, '  ')),
    json: n.manifestJsonFromJson('{"z":1.0,"a":[],"m":{"k":"\\u00e9"}}', 4),
    json0: n.manifestJsonFromJson('[1,{"a":2}]', 0),
    sha: n.sha256('tanka'),
    parsed: std.toString(n.parseYaml('a: 1\n---\nb: [x, y]\n')),
  }),
}
