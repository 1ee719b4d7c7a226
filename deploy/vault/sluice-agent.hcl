# Vault Agent for sluice: writes each secret sluice needs to its own file under
# /run/sluice-secrets/, which the unit hands to sluice with LoadCredential= (the config reads
# `file:${CREDENTIALS_DIRECTORY}/<name>`), and reloads sluice (zero-downtime:
# `systemctl reload sluice`) when a secret changes. See deploy/README.md.
#
# The agent authenticates with AppRole; role_id and secret_id are provisioned to the host
# out of band (readable by root only). Paths assume KV version 2 at `secret/`.

auto_auth {
  method "approle" {
    config = {
      role_id_file_path                   = "/etc/vault-agent/sluice/role_id"
      secret_id_file_path                 = "/etc/vault-agent/sluice/secret_id"
      remove_secret_id_file_after_reading = false
    }
  }
}

template_config {
  exit_on_retry_failure = true
}

template {
  destination = "/run/sluice-secrets/openai"
  perms       = "0400"
  contents    = "{{ with secret \"secret/data/sluice/providers\" }}{{ .Data.data.openai }}{{ end }}"
  exec {
    command = ["systemctl", "reload", "sluice"]
  }
}

template {
  destination = "/run/sluice-secrets/team-a"
  perms       = "0400"
  contents    = "{{ with secret \"secret/data/sluice/keys\" }}{{ index .Data.data \"team-a\" }}{{ end }}"
  exec {
    command = ["systemctl", "reload", "sluice"]
  }
}
