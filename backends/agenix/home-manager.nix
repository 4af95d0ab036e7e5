# Home Manager side of the agenix backend: each secret file of an artifact
# whose backend is agenix becomes `age.secrets."<artifact>-<file>"` with the
# user's file `secrets/per-user/<user>/<artifact>/<file>.age`, decrypted by
# agenix's Home Manager module at login to the declared path and mode. Import
# agenix's Home Manager module (`agenix.homeManagerModules.default`) too, and
# set `age.identityPaths` to the user's key. The mapping is
# nix-modules/lib/agenix.nix; the user is `artifacts.userName`; the module's
# shape is nix-modules/home-backend.nix.
import ../../nix-modules/home-backend.nix {
  names = [ "agenix" ];
  service = "agenix.service";
  option = [
    "age"
    "secrets"
  ];
  mapping = ../../nix-modules/lib/agenix.nix;
  what = "agenix";
}
