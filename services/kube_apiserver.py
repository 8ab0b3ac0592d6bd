"""A private Kubernetes control plane for tests and rehearsals: etcd, kube-apiserver and kube-controller-manager.

All three listen on 127.0.0.1 only and talk TLS with certificates of their own, generated here (a CA, serving
certificates for etcd and the API server, client certificates for the API server's etcd connection, an admin
in system:masters and the controller-manager) together with the service-account signing key. The API server runs
the production admission plugins (PodSecurity, ResourceQuota, LimitRanger, ServiceAccount and the defaults) and
RBAC; the controller-manager runs only what quota and service accounts need. There is no kubelet, scheduler or
network plugin: pods are admitted and stored, never run, and a NetworkPolicy is stored, never enforced.

By default it all lives in a temp dir deleted on stop; given a `root`, the certificates and etcd's data are kept
there, so a later start serves the same objects (until `destroy()`). Each process's pid and start time are
recorded in `root/processes.json` right after it starts (fleet rule 6); stop() and stop_recorded() signal only
recorded processes that are still the recorded ones: SIGTERM, then SIGKILL, each with a bounded wait.

The binaries are built by `make setup` (engine/build_kube.sh) into .venv/bin, beside the Pulumi engine.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import ipaddress
import json
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services import kept_running, process_records
from services.kept_running import KeptRunning
from services.ports import HOST, answers, free_port, port_free

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
BUILD_HINT = "`make setup` builds it (engine/build_kube.sh)"
PROCESS_RECORD = "processes.json"
KUBECONFIG = "kubeconfig"
ETCD_PEER_PORT = "etcd-peer-port"  # kept: etcd's member keeps its peer URL in its data
# Kept: a kubeconfig written for an earlier start (the rehearsal's, a stack's provider config) names this port, so
# a restart on the same root comes back on it while it is free.
APISERVER_PORT = "apiserver-port"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMISSION_PLUGINS = "NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,ResourceQuota"  # and the defaults
# What quota and service accounts need: without them a quota never gets a status (so nothing is refused), and a
# namespace gets no `default` ServiceAccount (so every pod is refused for that). The aggregation controller fills
# the admin, edit and view ClusterRoles, which are empty without it (a binding to them would seem to grant nothing).
# The claim protection controller lifts the `kubernetes.io/pvc-protection` finalizer (which admission puts on every
# PersistentVolumeClaim) from a deleted claim no pod uses: without it the claim stays Terminating, and so does the
# namespace deleted around it (a tier downgrade, fleet.tier_change).
CONTROLLERS = ("serviceaccount-controller", "serviceaccount-token-controller", "resourcequota-controller",
               "namespace-controller", "garbage-collector-controller", "root-ca-certificate-publisher-controller",
               "clusterrole-aggregation-controller", "persistentvolumeclaim-protection-controller")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGKILL)
STOP_WAIT_S = 10.0
CERT_DAYS = 3650
USER_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# kind -> (plural, namespaced) for the kinds this project renders and its checks create.
RESOURCES = {
    "Namespace": ("namespaces", False),
    "ResourceQuota": ("resourcequotas", True),
    "LimitRange": ("limitranges", True),
    "NetworkPolicy": ("networkpolicies", True),
    "ServiceAccount": ("serviceaccounts", True),
    "Secret": ("secrets", True),
    "ConfigMap": ("configmaps", True),
    "Pod": ("pods", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "SubjectAccessReview": ("subjectaccessreviews", False),
    "ValidatingAdmissionPolicy": ("validatingadmissionpolicies", False),
    "ValidatingAdmissionPolicyBinding": ("validatingadmissionpolicybindings", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "Stack": ("stacks", True),  # the Pulumi Kubernetes Operator's, once its CRD is installed
}


class KubeApiServerError(Exception):
    """The local control plane could not be found, started or used; the message says what to fix."""


@dataclass(frozen=True)
class Response:
    status: int
    body: dict

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


def default_bin_dir() -> Path:
    """.venv/bin: where `make setup` puts the binaries, beside this interpreter."""
    return Path(sys.executable).parent


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(empty)"
    except OSError:
        return "(no log)"


# Certificates ----------------------------------------------------------------------------------------------

def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
                 issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False, server: bool = False,
                 client: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address(HOST)), x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
            x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"), x509.DNSName("kubernetes.default.svc.cluster.local"),
        ]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def write_pki(pki: Path) -> None:
    """The CA, every certificate and the service-account key under `pki` (kept ones are left as they are)."""
    if (pki / "ca.crt").is_file():
        return
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _certificate(_name("tenantctl-local-ca"), ca_key, None, ca_key, ca=True)
    leaves = {
        "etcd-server": (_name("etcd"), {"server": True, "client": True}),
        "apiserver-etcd-client": (_name("kube-apiserver-etcd-client"), {"client": True}),
        "apiserver": (_name("kube-apiserver"), {"server": True}),
        "admin": (_name("tenantctl-admin", "system:masters"), {"client": True}),
        "controller-manager": (_name("system:kube-controller-manager"), {"client": True}),
    }
    for stem, (subject, usage) in leaves.items():
        key = _key()
        (pki / f"{stem}.key").write_bytes(_pem_key(key))
        (pki / f"{stem}.crt").write_bytes(
            _certificate(subject, key, ca, ca_key, **usage).public_bytes(serialization.Encoding.PEM))
    # Kubernetes reads an EC signing key in SEC1 form ("EC PRIVATE KEY"), and its public half from its own file.
    account_key = _key()
    (pki / "sa.key").write_bytes(account_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    (pki / "sa.pub").write_bytes(account_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (pki / "ca.key").write_bytes(_pem_key(ca_key))
    # Last: a pki folder holding ca.crt is complete (a start killed halfway writes it all again).
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for path in pki.iterdir():
        path.chmod(0o600)


def kubeconfig_text(server: str, pki: Path, user: str) -> str:
    """A kubeconfig (JSON, which kubectl reads as YAML) for `user`'s client certificate."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server,
                                                   "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": user, "user": {"client-certificate": str(pki / f"{user}.crt"),
                                          "client-key": str(pki / f"{user}.key")}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }, indent=2)


# The control plane -----------------------------------------------------------------------------------------

class LocalKubeApiServer(KeptRunning):
    """etcd, kube-apiserver and kube-controller-manager. Use as a context manager, or call start() and stop()."""

    LEFT_RUNNING_WHAT = "control plane"
    ERROR = KubeApiServerError

    def __init__(self, bin_dir: Path | str | None = None, *, root: Path | str | None = None,
                 base_dir: Path | str | None = None, start_timeout: float = 120.0) -> None:
        self._bin_dir = Path(bin_dir) if bin_dir is not None else default_bin_dir()
        self._kept_root = Path(root).resolve() if root is not None else None
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._start_timeout = start_timeout
        self._root: Path | None = None
        self._port: int | None = None
        self._records: dict[str, process_records.ProcessRecord] = {}
        self._children: list[subprocess.Popen] = []  # reaped once stopped, so no zombie lingers
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}  # by user
        self._connections: dict[tuple[int, str], http.client.HTTPSConnection] = {}  # by thread and user
        self._adopted = False  # attached to a control plane an earlier run left running: stop() leaves it be

    # Lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> LocalKubeApiServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> LocalKubeApiServer:
        if self._port is not None:
            return self
        binaries = self._binaries()
        self._root = self._make_root()
        try:
            self.stop_recorded(self._root)  # left by a killed run on this kept root: ours, so stop it
            pki = self._root / "pki"
            write_pki(pki)
            (self._root / "logs").mkdir(exist_ok=True)
            etcd_port = self._start_etcd(binaries["etcd"], pki)
            self._port = self._start_apiserver(binaries["kube-apiserver"], pki, etcd_port)
            (self._root / KUBECONFIG).write_text(kubeconfig_text(self.server, pki, "admin"))
            controller_manager = self._start_controller_manager(binaries["kube-controller-manager"], pki)
            self._wait_for_default_service_account(controller_manager)
        except BaseException:
            self.stop()
            raise
        return self

    def adopt(self) -> bool:
        """Use the control plane an earlier run started on this kept `root` and left running on purpose
        (`tenantctl rehearse --keep-running`): every recorded process still the recorded one and the API server
        ready. True when adopted; stop() then only lets go of it. False (nothing changed) otherwise."""
        if self._port is not None:
            return True
        if not kept_running.marked(self._kept_root):
            return False
        try:
            data = json.loads((self._kept_root / PROCESS_RECORD).read_text())
            port = int((self._kept_root / APISERVER_PORT).read_text())
        except (OSError, ValueError):
            return False
        records = {name: process_records.ProcessRecord.from_dict(data.get(name)) if isinstance(data, dict) else None
                   for name in BINARIES}
        if not all(record is not None and process_records.is_running(record) for record in records.values()):
            return False
        self._root, self._port = self._kept_root, port
        try:
            ready = self.request("GET", "/readyz").status == 200
        except KubeApiServerError:
            ready = False
        if not ready:
            self._close_connections()
            self._root, self._port = None, None
            return False
        self._records = {name: record for name, record in records.items() if record is not None}
        self._adopted = True
        return True

    def _is_running(self) -> bool:
        return self._port is not None

    def stop(self) -> None:
        """Stop what this object started (the controller-manager, the API server, then etcd) and delete the
        temp dir (a kept `root` stays, with its etcd data). Idempotent. An adopted control plane is only let go."""
        self._close_connections()
        root, records, children = self._root, self._records, self._children
        self._root, self._port, self._records, self._children = None, None, {}, []
        if self._adopted:
            self._adopted = False
            return
        if root is None:
            return
        try:
            gone = [process_records.stop(records[name], wait_s=STOP_WAIT_S, signals=STOP_SIGNALS)
                    for name in reversed(BINARIES) if name in records]
            for child in children:
                child.poll()
            if root == self._kept_root and all(gone):  # else the record stays, for stop_recorded()
                self._drop_record_if_ours(root, records)
        finally:
            if root != self._kept_root:
                shutil.rmtree(root, ignore_errors=True)

    @staticmethod
    def _drop_record_if_ours(root: Path, records: dict[str, process_records.ProcessRecord]) -> None:
        """Another start on the same root (after this one's run was taken for dead) records its own processes
        there: that record is not ours to drop."""
        path = root / PROCESS_RECORD
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()) == {name: record.as_dict() for name, record in records.items()}:
                path.unlink()

    def destroy(self) -> None:
        """Stop, and delete the kept `root` too (its certificates and etcd data)."""
        self.stop()
        if self._kept_root is not None:
            self.stop_recorded(self._kept_root)  # an adopted control plane is only let go by stop()
            shutil.rmtree(self._kept_root, ignore_errors=True)

    @classmethod
    def stop_recorded(cls, root: Path | str) -> list[str]:
        """Stop the processes recorded on `root` (left by a killed run) that are still the recorded ones;
        anything else is left alone. The names of those stopped."""
        path = Path(root) / PROCESS_RECORD
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        stopped, left = [], False
        for name in reversed(BINARIES):
            record = process_records.ProcessRecord.from_dict(data.get(name)) if isinstance(data, dict) else None
            if record is not None and process_records.is_running(record):
                left |= not process_records.stop(record, wait_s=STOP_WAIT_S, signals=STOP_SIGNALS)
                stopped.append(name)
        if left:
            raise KubeApiServerError(f"a process recorded in {path} survived SIGKILL; it was left recorded")
        path.unlink(missing_ok=True)
        kept_running.unmark(root)
        return stopped

    # Where it is -------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._port is not None

    @property
    def server(self) -> str:
        self._require_running()
        return f"https://{HOST}:{self._port}"

    @property
    def root(self) -> Path:
        self._require_running()
        assert self._root is not None
        return self._root

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig (system:masters): `kubectl --kubeconfig PATH get ns`."""
        return self.root / KUBECONFIG

    @property
    def pids(self) -> dict[str, int]:
        return {name: record.pid for name, record in self._records.items()}

    # Using it ----------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict | None = None, *, query: dict[str, str] | None = None,
                content_type: str = "application/json", user: str = "admin") -> Response:
        """One HTTPS request as `user` (a client certificate under pki/: admin, controller-manager), on a
        connection kept open for the next request of the same thread and user (a check asks hundreds of questions:
        a TLS handshake each would be most of its time)."""
        self._require_running()
        target = path + (f"?{urlencode(query)}" if query else "")
        payload = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        while True:
            connection, reused = self._connection(user)
            try:
                connection.request(method, target, body=payload, headers=headers)
                reply = connection.getresponse()
                raw = reply.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection(user)
                if reused and isinstance(exc, BrokenPipeError | ConnectionResetError):
                    continue  # the server closed the kept connection while it was idle: send again on a new one
                raise KubeApiServerError(f"{method} {path} failed: {exc}") from None
            if reply.will_close:
                self._drop_connection(user)
            break
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"message": raw.decode(errors="replace")}
        return Response(reply.status, parsed if isinstance(parsed, dict) else {"items": parsed})

    def _connection(self, user: str) -> tuple[http.client.HTTPSConnection, bool]:
        """This thread's open connection as `user`, and whether it was used before."""
        assert self._root is not None and self._port is not None
        key = (threading.get_ident(), user)
        with self._lock:
            if key in self._connections:
                return self._connections[key], True
            if user not in self._contexts:
                context = ssl.create_default_context(cafile=self._root / "pki" / "ca.crt")
                context.load_cert_chain(self._root / "pki" / f"{user}.crt", self._root / "pki" / f"{user}.key")
                self._contexts[user] = context
            connection = http.client.HTTPSConnection(HOST, self._port, context=self._contexts[user], timeout=30)
            self._connections[key] = connection
            return connection, False

    def _drop_connection(self, user: str) -> None:
        with self._lock:
            connection = self._connections.pop((threading.get_ident(), user), None)
        if connection is not None:
            connection.close()

    def _close_connections(self) -> None:
        with self._lock:
            connections, self._connections, self._contexts = list(self._connections.values()), {}, {}
        for connection in connections:
            connection.close()

    def apply(self, manifest: dict, *, dry_run: bool = False, field_manager: str = "tenantctl") -> Response:
        """Server-side apply of one object (created or updated; `dry_run` stores nothing). A field the object's
        schema does not declare is refused, as `kubectl apply --server-side` refuses it."""
        query = {"fieldManager": field_manager, "force": "true", "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("PATCH", object_path(manifest), manifest, query=query,
                            content_type="application/apply-patch+yaml")

    def install_crds(self, crds: list[dict]) -> None:
        """Apply CustomResourceDefinitions and wait until the server serves each (its Established condition)."""
        for crd in crds:
            reply = self.apply(crd)
            if not reply.ok:
                raise KubeApiServerError(f"CRD {crd.get('metadata', {}).get('name')!r} was refused "
                                         f"({reply.status}): {reply.message}")
        deadline = time.monotonic() + self._start_timeout
        for crd in crds:
            while not any(condition.get("type") == "Established" and condition.get("status") == "True"
                          for condition in self.get(crd).body.get("status", {}).get("conditions") or []):
                if time.monotonic() > deadline:
                    raise KubeApiServerError(f"CRD {crd['metadata']['name']!r} was not established within "
                                             f"{self._start_timeout:.0f}s")
                time.sleep(0.1)

    def create(self, manifest: dict, *, dry_run: bool = False) -> Response:
        query = {"dryRun": "All"} if dry_run else None
        return self.request("POST", collection_path(manifest), manifest, query=query)

    def delete(self, manifest: dict) -> Response:
        return self.request("DELETE", object_path(manifest))

    def get(self, manifest: dict) -> Response:
        return self.request("GET", object_path(manifest))

    def issue_client_certificate(self, user: str, organization: str | None = None) -> str:
        """A client certificate for `user` (in group `organization`) signed by the control plane's CA, under pki/:
        `request(..., user=user)` or `as_user(user)` then calls the server as that identity. Returns `user`."""
        self._require_running()
        assert self._root is not None
        pki = self._root / "pki"
        if not USER_STEM.fullmatch(user):
            raise KubeApiServerError(f"{user!r} is not a usable certificate name (letters, digits, '-', '_', '.')")
        ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
        ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = _key()
        (pki / f"{user}.key").write_bytes(_pem_key(key))
        certificate = _certificate(_name(user, organization), key, ca, ca_key, client=True)
        (pki / f"{user}.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        for path in (pki / f"{user}.key", pki / f"{user}.crt"):
            path.chmod(0o600)
        with self._lock:
            self._contexts.pop(user, None)
        return user

    def as_user(self, user: str) -> UserClient:
        """This server's API as `user` (a client certificate under pki/): what a check is given to run as."""
        return UserClient(self, user)

    def can_i(self, user: str, verb: str, resource: str, *, namespace: str = "", group: str = "",
              name: str = "") -> bool:
        """What a SubjectAccessReview says `user` may do (`system:serviceaccount:NS:NAME` for an account)."""
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}",
                  "system:authenticated"] if user.startswith("system:serviceaccount:") else ["system:authenticated"]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": {
                "verb": verb, "resource": resource, "group": group, "namespace": namespace, "name": name}},
        }
        reply = self.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        if not reply.ok:
            raise KubeApiServerError(f"SubjectAccessReview failed ({reply.status}): {reply.message}")
        return bool(reply.body.get("status", {}).get("allowed"))

    # Internals ---------------------------------------------------------------------------------------------

    def _require_running(self) -> None:
        if self._port is None:
            raise KubeApiServerError("the local API server is not running: call start() first")

    def _binaries(self) -> dict[str, Path]:
        found = {}
        for name in BINARIES:
            path = self._bin_dir / name
            if not (path.is_file() and path.stat().st_mode & 0o111):
                raise KubeApiServerError(f"{name} not found in {self._bin_dir}: {BUILD_HINT}")
            found[name] = path
        return found

    def _make_root(self) -> Path:
        where = self._base_dir or Path(tempfile.gettempdir())
        try:
            if self._kept_root is not None:
                self._kept_root.mkdir(parents=True, exist_ok=True)
                return self._kept_root
            return Path(tempfile.mkdtemp(prefix="localkube-", dir=where))
        except OSError as exc:
            raise KubeApiServerError(f"cannot create the control plane's directory under {where}: "
                                     f"{exc.strerror}") from None

    def _launch(self, name: str, binary: Path, args: list[str]) -> subprocess.Popen:
        """Start one process in a session of its own and record it at once (fleet rule 6)."""
        assert self._root is not None
        log = (self._root / "logs" / f"{name}.log").open("ab")
        try:
            process = subprocess.Popen([str(binary), *args], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       cwd=self._root, start_new_session=True)
        except OSError as exc:
            raise KubeApiServerError(f"{name} could not start: {exc}") from None
        finally:
            log.close()
        self._children.append(process)
        record = process_records.record_of(process.pid)
        if record is not None:
            self._records[name] = record
            temporary = self._root / (PROCESS_RECORD + ".tmp")
            temporary.write_text(json.dumps({key: value.as_dict() for key, value in self._records.items()}))
            temporary.replace(self._root / PROCESS_RECORD)
        return process

    def _wait(self, name: str, process: subprocess.Popen, ready: Callable[[], bool]) -> None:
        assert self._root is not None
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise KubeApiServerError(f"{name} exited with {process.returncode} while starting; its log "
                                         f"({self._root / 'logs' / (name + '.log')}) ends:\n"
                                         f"{_tail(self._root / 'logs' / f'{name}.log')}")
            with contextlib.suppress(OSError, http.client.HTTPException, KubeApiServerError):
                if ready():
                    return
            time.sleep(0.2)
        raise KubeApiServerError(f"{name} was not ready within {self._start_timeout:.0f}s; its log ends:\n"
                                 f"{_tail(self._root / 'logs' / f'{name}.log')}")

    def _start_etcd(self, binary: Path, pki: Path) -> int:
        assert self._root is not None
        peer_file = self._root / ETCD_PEER_PORT
        peer = int(peer_file.read_text()) if peer_file.is_file() else free_port()
        peer_file.write_text(str(peer))
        client = free_port()
        process = self._launch("etcd", binary, [
            "--name=local", f"--data-dir={self._root / 'etcd'}",
            f"--listen-client-urls=https://{HOST}:{client}", f"--advertise-client-urls=https://{HOST}:{client}",
            f"--listen-peer-urls=http://{HOST}:{peer}", f"--initial-advertise-peer-urls=http://{HOST}:{peer}",
            f"--initial-cluster=local=http://{HOST}:{peer}", "--initial-cluster-state=new",
            f"--cert-file={pki / 'etcd-server.crt'}", f"--key-file={pki / 'etcd-server.key'}",
            f"--trusted-ca-file={pki / 'ca.crt'}", "--client-cert-auth",
            "--unsafe-no-fsync", "--log-level=warn",
        ])

        self._wait("etcd", process, lambda: answers(client))
        return client

    def _start_apiserver(self, binary: Path, pki: Path, etcd_port: int) -> int:
        assert self._root is not None
        port_file = self._root / APISERVER_PORT
        kept = int(port_file.read_text()) if port_file.is_file() and port_file.read_text().strip().isdigit() else 0
        port = kept if kept and port_free(kept) else free_port()
        port_file.write_text(str(port))
        process = self._launch("kube-apiserver", binary, [
            f"--etcd-servers=https://{HOST}:{etcd_port}", f"--etcd-cafile={pki / 'ca.crt'}",
            f"--etcd-certfile={pki / 'apiserver-etcd-client.crt'}",
            f"--etcd-keyfile={pki / 'apiserver-etcd-client.key'}",
            f"--bind-address={HOST}", f"--advertise-address={HOST}", f"--secure-port={port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC", f"--enable-admission-plugins={ADMISSION_PLUGINS}",
            # As on a production cluster: the flag allows privileged containers, so PodSecurity is what refuses.
            "--allow-privileged=true", "--profiling=false", "--anonymous-auth=false",
        ])
        self._port = port  # request() needs it; start() sets it again

        def ready() -> bool:
            return self.request("GET", "/readyz").status == 200

        try:
            self._wait("kube-apiserver", process, ready)
        finally:
            self._port = None
        return port

    def _start_controller_manager(self, binary: Path, pki: Path) -> subprocess.Popen:
        assert self._root is not None
        config = self._root / "controller-manager.kubeconfig"
        config.write_text(kubeconfig_text(self.server, pki, "controller-manager"))
        return self._launch("kube-controller-manager", binary, [
            f"--kubeconfig={config}", f"--authentication-kubeconfig={config}",
            f"--authorization-kubeconfig={config}", f"--bind-address={HOST}", f"--secure-port={free_port()}",
            f"--controllers={','.join(CONTROLLERS)}", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            "--leader-elect=false", "--profiling=false",
        ])

    def _wait_for_default_service_account(self, controller_manager: subprocess.Popen) -> None:
        """The controller-manager works once `default` has its ServiceAccount (pods need it to be admitted)."""

        def created() -> bool:
            return self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default").ok

        self._wait("kube-controller-manager", controller_manager, created)


@dataclass(frozen=True)
class UserClient:
    """The API of a running `LocalKubeApiServer` as one user: `request` as the server's, without `user`."""

    server: LocalKubeApiServer
    user: str

    def request(self, method: str, path: str, body: dict | None = None, *, query: dict[str, str] | None = None,
                content_type: str = "application/json") -> Response:
        return self.server.request(method, path, body, query=query, content_type=content_type, user=self.user)


def collection_path(manifest: dict) -> str:
    kind = manifest["kind"]
    if kind not in RESOURCES:
        raise KubeApiServerError(f"no API path known for kind {kind!r}: add it to services.kube_apiserver.RESOURCES")
    plural, namespaced = RESOURCES[kind]
    api_version = manifest["apiVersion"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    namespace = manifest.get("metadata", {}).get("namespace")
    if namespaced:
        if not namespace:
            raise KubeApiServerError(f"{kind} {manifest.get('metadata', {}).get('name')!r} has no namespace")
        return f"{prefix}/namespaces/{quote(namespace, safe='')}/{plural}"
    return f"{prefix}/{plural}"


def object_path(manifest: dict) -> str:
    return f"{collection_path(manifest)}/{quote(manifest['metadata']['name'], safe='')}"
