# Home Manager side of the sops-nix backend: each secret file of an artifact
# whose backend is sops-nix (or sops) becomes `sops.secrets."<artifact>/<file>"`
# with `sopsFile` = the user's file `secrets/per-user/<user>.sops.yaml` and
# `key = "<artifact>/<file>"`, decrypted by sops-nix's Home Manager module to
# the declared path (`$XDG_RUNTIME_DIR` given as sops-nix's `%r`) and mode.
# Import sops-nix's Home Manager module (`sops-nix.homeManagerModules.sops`)
# too and give it the user's key (`sops.age.keyFile` or `sops.age.sshKeyPaths`).
# The mapping is nix-modules/lib/sops-nix.nix; the user is `artifacts.userName`;
# the module's shape is nix-modules/home-backend.nix.
import ../../nix-modules/home-backend.nix {
  names = [
    "sops-nix"
    "sops"
  ];
  service = "sops-nix.service";
  option = [
    "sops"
    "secrets"
  ];
  mapping = ../../nix-modules/lib/sops-nix.nix;
  what = "sops";
}
