// tanka's natives; the C++ jsonnet reference gets shim/natives.libsonnet.
{
  parseYaml(s):: std.native('parseYaml')(s),
  manifestYamlFromJson(s):: std.native('manifestYamlFromJson')(s),
  manifestJsonFromJson(s, i):: std.native('manifestJsonFromJson')(s, i),
  sha256(s):: std.native('sha256')(s),
}
