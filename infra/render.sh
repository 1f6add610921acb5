#!/bin/sh
# Fill the deploy-time placeholders of one infra file and print the result.
#
#   infra/render.sh infra/k8s/rayjob-nightly.yaml > /tmp/rayjob-nightly.yaml
#
# Only the variables listed in DEPLOY_VARS are substituted, and only if the file uses them;
# everything else is left as is: ${RUN_DATE} (filled per run by the CronJob) and the shell
# variables inside the CronJob's script.  A plain `envsubst` without a variable list would
# blank those, so always render through this script.  Fails if a variable the file needs
# is unset or empty, or if a *_PREFIX value starts or ends with "/".
set -eu
DEPLOY_VARS="IMAGE KUBECTL_IMAGE AWS_REGION AWS_ACCOUNT_ID OIDC_PROVIDER KMS_KEY_ARN
INPUT_BUCKET INPUT_PREFIX OUTPUT_BUCKET OUTPUT_PREFIX MODEL_BUCKET MODEL_PREFIX"

[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: $0 FILE" >&2; exit 2; }
file=$1
list=""
for v in $DEPLOY_VARS; do
  if grep -q "[\$]{$v}" "$file"; then
    eval "val=\${$v:-}"
    if [ -z "$val" ]; then
      echo "render.sh: $v is not set (used by $file; see infra/README.md)" >&2
      exit 2
    fi
    case "$v:$val" in
      *_PREFIX:/*|*_PREFIX:*/) echo "render.sh: $v must not start or end with '/': $val" >&2; exit 2 ;;
    esac
    list="$list \${$v}"
  fi
done
if [ -z "$list" ]; then
  cat "$file"
else
  envsubst "$list" < "$file"
fi
