# The Home Manager side of a third-party backend module in upstream's style:
# options under `artifacts.config.agenix`, used to set agenix's own options.
{ config, lib, ... }:
{
  options.artifacts.config.agenix = {
    username = lib.mkOption {
      type = lib.types.str;
      default = config.home.username;
      description = "This user's directory under per-user/.";
    };
    identityPaths = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      description = "Keys that decrypt the user's files.";
    };
  };

  config.age.identityPaths = config.artifacts.config.agenix.identityPaths;
}
