# Sourced by the plain backend's scripts: where an artifact lives.
case "$artifact_context" in
  shared) dir="store/shared/$artifact" ;;
  nixos) dir="store/per-machine/$machine/$artifact" ;;
  homemanager) dir="store/per-user/$username/$artifact" ;;
  tanka) dir="store/tanka/$environment/$artifact" ;;
  *) echo "plain: unknown context $artifact_context" >&2; exit 2 ;;
esac
