# A value typed by a person, stored as is.
{ pkgs, ... }:
{
  artifacts.store.smtp = {
    files.password = { };
    prompts.password.description = "SMTP relay password";
    generator = pkgs.writers.writeBash "smtp" ''
      cp "$prompts/password" "$out/password"
    '';
  };
}
