package ui

import (
	"fmt"
	"strings"
)

// snippet is one install recipe shown on the token page.
type snippet struct {
	ID, Title, Text string
}

// snippets renders the install recipes for a runner named name enrolling
// with token.
func snippets(in Install, name, token string) []snippet {
	sha := in.RunnerBinarySHA256
	if sha == "" {
		sha = "unknown"
	}
	compose := fmt.Sprintf(`services:
  leash-runner:
    image: leash-runner:dev
    restart: unless-stopped
    environment:
      LEASH_NAME: %s
      LEASH_GATEWAY: %s
      LEASH_ENROLL_URL: %s
      LEASH_TOKEN: %s
    volumes:
      - leash-runner-state:/var/lib/leash-runner
volumes:
  leash-runner-state: {}
`, name, in.GatewayURL, in.EnrollURL, token)
	binary := fmt.Sprintf(`# leash-runner binary SHA-256: %s
echo '%s  leash-runner' | sha256sum -c - && install -m 0755 leash-runner /usr/local/bin/
install -d -m 0700 /var/lib/leash-runner /etc/leash
umask 077; printf '%%s\n' '%s' > /etc/leash/token
cat > /etc/systemd/system/leash-runner.service <<'UNIT'
[Unit]
Description=Leash runner
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/local/bin/leash-runner --name %s --gateway %s --enroll-url %s --token-file /etc/leash/token --state-dir /var/lib/leash-runner
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload && systemctl enable --now leash-runner
`, sha, sha, token, name, in.GatewayURL, in.EnrollURL)
	k8s := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: leash-runner-%[1]s
stringData:
  token: %[4]s
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: leash-runner-%[1]s
spec:
  serviceName: leash-runner-%[1]s
  replicas: 1
  selector:
    matchLabels: {app: leash-runner-%[1]s}
  template:
    metadata:
      labels: {app: leash-runner-%[1]s}
    spec:
      containers:
        - name: runner
          image: leash-runner:dev
          env:
            - {name: LEASH_NAME, value: %[1]s}
            - {name: LEASH_GATEWAY, value: "%[2]s"}
            - {name: LEASH_ENROLL_URL, value: "%[3]s"}
            - {name: LEASH_TOKEN_FILE, value: /etc/leash/token}
            - {name: LEASH_STATE_DIR, value: /var/lib/leash-runner}
          volumeMounts:
            - {name: token, mountPath: /etc/leash, readOnly: true}
            - {name: state, mountPath: /var/lib/leash-runner}
      volumes:
        - name: token
          secret: {secretName: leash-runner-%[1]s}
  volumeClaimTemplates:
    - metadata: {name: state}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 10Mi}}
`, name, in.GatewayURL, in.EnrollURL, token)
	return []snippet{
		{ID: "compose", Title: "Docker Compose", Text: compose},
		{ID: "systemd", Title: "Binary + systemd", Text: binary},
		{ID: "k8s", Title: "Kubernetes", Text: strings.TrimSpace(k8s) + "\n"},
	}
}
