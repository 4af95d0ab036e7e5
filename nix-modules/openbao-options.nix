# The options both sides of the openbao backend declare under
# `artifacts.openbao` (backends/openbao/module.nix for machines,
# backends/openbao/home-manager.nix for users): what runs the fetch, the
# server, the AppRole's id files and the rotation timer. The id files'
# defaults differ per side (`roleIdFile`, `secretIdFile`: attrsets with
# `default`, optional `defaultText`, and `description`).
{ lib, roleIdFile, secretIdFile }:
let
  idFile = spec: lib.mkOption ({ type = lib.types.str; } // spec);
in
{
  package = lib.mkOption {
    type = lib.types.package;
    description = "The package providing `bin/artifacts`, run by the fetch service.";
  };
  address = lib.mkOption {
    type = lib.types.nullOr lib.types.str;
    default = null;
    example = "https://bao.example.org:8200";
    description = "The server, when `artifacts.config.openbao.address` does not say it.";
  };
  roleIdFile = idFile roleIdFile;
  secretIdFile = idFile secretIdFile;
  timer = {
    enable = lib.mkEnableOption "fetching again periodically, to pick up rotations";
    onCalendar = lib.mkOption {
      type = lib.types.str;
      default = "hourly";
      description = "When to fetch again (systemd.time(7) calendar event).";
    };
  };
}
