{{/* Names, labels and shared pieces of the pod specs. */}}

{{- define "propylon.labels" -}}
app.kubernetes.io/part-of: propylon
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "propylon.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}:{{ $tag }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{- define "propylon.serviceAccount" -}}
{{- $sa := index .root.Values.serviceAccounts .name -}}
{{- if $sa.create }}{{ $sa.name }}{{ else }}{{ $sa.name | default "default" }}{{ end -}}
{{- end }}

{{/* The values file every process reads (mounted from the ConfigMap). */}}
{{- define "propylon.valuesMount" -}}
- name: config
  mountPath: /etc/propylon
  readOnly: true
{{- end }}

{{- define "propylon.valuesVolume" -}}
- name: config
  configMap:
    name: propylon-config
{{- end }}

{{/* Environment shared by operator and agent. */}}
{{- define "propylon.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
{{- if .Values.k8sServiceHost }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ .Values.k8sServiceHost | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ .Values.k8sServicePort | default "443" | quote }}
{{- end }}
{{- end }}

{{- define "propylon.probes" -}}
startupProbe:
  httpGet:
    {{- with .host }}
    host: {{ . | quote }}
    {{- end }}
    path: /healthz
    port: {{ .port }}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet:
    {{- with .host }}
    host: {{ . | quote }}
    {{- end }}
    path: /healthz
    port: {{ .port }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    {{- with .host }}
    host: {{ . | quote }}
    {{- end }}
    path: /readyz
    port: {{ .port }}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 3
{{- end }}

{{/* Capabilities to add, least privilege: NET_BIND_SERVICE only when kept. */}}
{{- define "propylon.capabilities" -}}
{{- $keep := .keep -}}
{{- $out := list -}}
{{- range .caps -}}
{{- if or (ne . "NET_BIND_SERVICE") $keep -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
capabilities:
  drop:
    - ALL
  {{- if $out }}
  add:
    {{- toYaml $out | nindent 4 }}
  {{- end }}
{{- end }}

{{/* What operator and agent both read (list+watch). */}}
{{- define "propylon.readRules" }}
- apiGroups: ["gateway.networking.k8s.io"]
  resources: {{ toJson .gatewayKinds }}
  verbs: ["list", "watch"]
- apiGroups: ["gateway.networking.x-k8s.io"]
  resources: ["xlistenersets"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: {{ toJson (concat (list "namespaces" "services") (ternary (list "secrets") (list) .secrets) (list "configmaps")) }}
  verbs: ["list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
- apiGroups: ["cilium.io"]
  resources: ["ciliumgatewayclassconfigs", "ciliumloadbalancerippools"]
  verbs: ["list", "watch"]
# gatewayAPI.hostNetwork: Gateways get the selected nodes' addresses.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "watch"]
# A Gateway API or Cilium kind whose CRD is installed later is picked up.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}
