# A value typed by a person, kept under $XDG_RUNTIME_DIR (the default path).
{ pkgs, ... }:
{
  artifacts.store.api-key = {
    files.key = { };
    prompts.key.description = "API key";
    generator = pkgs.writers.writeBash "api-key" ''
      cp "$prompts/key" "$out/key"
    '';
  };
}
