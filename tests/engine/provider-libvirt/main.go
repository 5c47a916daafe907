// pulumi-resource-libvirt for the tests: the provider plugin of pulumi-libvirt 0.5.4, built here from Go
// modules with the same bridge (pulumi-terraform-bridge v3.99.0, pulumi's terraform-plugin-sdk fork, pulumi
// sdk v3.143.0) and the same provider wiring (pulumi-libvirt v0.5.4 provider/resources.go: tokens,
// the `uri` config with LIBVIRT_DEFAULT_URI, autonaming).
//
// One difference cannot be avoided here: the Go module proxy these machines reach serves
// terraform-provider-libvirt v0.8.3, not v0.8.1 (it answers 403 for v0.8.1 and for pulumi-libvirt's own
// provider module). v0.8.3 is v0.8.1 plus fixes. Where a fix changes what our program can observe, the
// wrapper below puts v0.8.1's behaviour back (or fails where it cannot be reproduced), citing the v0.8.1
// file and function, so this build is at least as strict as the provider users run:
//
//   - libvirt/domain.go domainGetIfacesInfo (v0.8.1): every Read of a running domain, the one that ends
//     each Create included, with qemu_agent = true asks the guest agent for addresses and fails on any
//     error, such as libvirt's "guest agent is not connected" while the guest boots (v0.8.2 #1144
//     tolerates it).
//
//   - libvirt/volume_image.go httpImage.IsQCOW2 and resource_libvirt_volume.go
//     resourceLibvirtVolumeCreate (v0.8.1): a URL source is sniffed with a ranged GET (bytes=0-7) that
//     must answer 206 with the qcow2 magic; a given format other than qcow2 for a qcow2 image is an error
//     (v0.8.3 trusts the file extension and skips the check when a format is given).
//
//   - libvirt/uri/ssh.go dialSSH and dialHost (v0.8.1): a qemu+ssh URI's host is dialed with its port still in
//     it (net.JoinHostPort(u.Host, port): "[host:2222]:2222", never connected), and ssh_config's Port is never
//     read (port 22 unless the URI gives one). v0.8.3 dials u.Hostname() on ssh_config's Port, else the URI's.
//     At configure, a URI with a port fails with the error that very dial gives; a host whose ssh_config gives
//     another port fails with the error of dialing port 22 there, or, where something answers on 22, with a
//     note that this build cannot reproduce v0.8.1 (it would have dialed 22).
//
// The remaining v0.8.2/v0.8.3 changes (a macvtap "private" mode, an error return in code paths the program
// does not use) cannot be reached through pulumi-libvirt 0.5.4's Python SDK.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	tflibvirt "github.com/dmacvicar/terraform-provider-libvirt/libvirt"
	libvirturi "github.com/dmacvicar/terraform-provider-libvirt/libvirt/uri"
	"github.com/google/uuid"
	"github.com/hashicorp/terraform-plugin-sdk/v2/diag"
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/kevinburke/ssh_config"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	bridgetokens "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
)

// The plugin version the pulumi_libvirt 0.5.4 Python SDK asks the engine for.
const pluginVersion = "0.5.4"

func main() {
	tfbridge.Main("libvirt", pluginVersion, providerInfo(), nil)
}

func providerInfo() tfbridge.ProviderInfo {
	upstream := tflibvirt.Provider()
	restoreV081Behaviour(upstream)
	prov := tfbridge.ProviderInfo{
		P:       shim.NewProvider(upstream),
		Name:    "libvirt",
		Version: pluginVersion,
		Config: map[string]*tfbridge.SchemaInfo{
			// Required upstream (libvirt/provider.go), with only this environment variable as fallback.
			"uri": {Default: &tfbridge.DefaultInfo{EnvVars: []string{"LIBVIRT_DEFAULT_URI"}}},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"libvirt_cloudinit_disk": {Tok: "libvirt:index/cloudInitDisk:CloudInitDisk"},
			"libvirt_domain":         {Tok: "libvirt:index/domain:Domain"},
			"libvirt_ignition":       {Tok: "libvirt:index/ignition:Ignition"},
			"libvirt_network":        {Tok: "libvirt:index/network:Network"},
			"libvirt_pool":           {Tok: "libvirt:index/pool:Pool"},
			"libvirt_volume":         {Tok: "libvirt:index/volume:Volume"},
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"libvirt_network_dns_host_template":        {Tok: "libvirt:index/getNetworkDnsHostTemplate:getNetworkDnsHostTemplate"},
			"libvirt_network_dns_srv_template":         {Tok: "libvirt:index/getNetworkDnsSrvTemplate:getNetworkDnsSrvTemplate"},
			"libvirt_network_dnsmasq_options_template": {Tok: "libvirt:index/getNetworkDnsmasqOptionsTemplate:getNetworkDnsmasqOptionsTemplate"},
		},
		MetadataInfo: tfbridge.NewProviderMetadata([]byte("{}")),
	}
	prov.MustComputeTokens(bridgetokens.SingleModule("libvirt_", "index", bridgetokens.MakeStandard("libvirt")))
	prov.MustApplyAutoAliases()
	// As pulumi-libvirt does: `name` is auto-named, so an explicit name makes every replacement
	// delete-before-replace.
	prov.SetAutonaming(255, "-")
	return prov
}

// configuredURI is the `uri` the engine configured the provider with (one provider per process).
var configuredURI struct {
	sync.Mutex
	value string
}

func restoreV081Behaviour(p *schema.Provider) {
	configure := p.ConfigureFunc
	p.ConfigureFunc = func(d *schema.ResourceData) (interface{}, error) {
		configuredURI.Lock()
		configuredURI.value = d.Get("uri").(string)
		configuredURI.Unlock()
		if err := sshAddressAsV081(d.Get("uri").(string)); err != nil {
			return nil, err
		}
		return configure(d)
	}

	// resourceLibvirtDomainRead wraps domainGetIfacesInfo's error once more. Create calls Read directly
	// (v0.8.1 resource_libvirt_domain.go resourceLibvirtDomainCreate, after DomainCreate and SetId), so
	// the check runs after both the framework's Reads and Create.
	domain := p.ResourcesMap["libvirt_domain"]
	readDomain := domain.ReadContext
	domain.ReadContext = func(ctx context.Context, d *schema.ResourceData, meta interface{}) diag.Diagnostics {
		if err := interfaceAddressesAsV081(d); err != nil {
			return diag.Errorf("error retrieving interface addresses: %s", err)
		}
		return readDomain(ctx, d, meta)
	}
	createDomain := domain.CreateContext
	domain.CreateContext = func(ctx context.Context, d *schema.ResourceData, meta interface{}) diag.Diagnostics {
		if diags := createDomain(ctx, d, meta); diags.HasError() {
			return diags
		}
		if err := interfaceAddressesAsV081(d); err != nil {
			return diag.Errorf("error retrieving interface addresses: %s", err)
		}
		return nil
	}

	volume := p.ResourcesMap["libvirt_volume"]
	createVolume := volume.CreateContext
	volume.CreateContext = func(ctx context.Context, d *schema.ResourceData, meta interface{}) diag.Diagnostics {
		if err := urlSourceAsV081(d); err != nil {
			return diag.FromErr(err)
		}
		return createVolume(ctx, d, meta)
	}
}

// sshAddressAsV081 repeats the address v0.8.1 libvirt/uri/ssh.go dials for a qemu+ssh URI (see the top of this
// file), and fails as that dial fails; config.go Client wraps it in "failed to connect".
func sshAddressAsV081(rawURI string) error {
	u, err := libvirturi.Parse(rawURI)
	if err != nil || !strings.HasSuffix(u.Scheme, "+ssh") {
		return nil // the upstream code reports it, or it is not ssh
	}
	if u.Port() != "" {
		address := net.JoinHostPort(u.Host, u.Port()) // dialSSH passes u.Host, port included
		conn, err := net.DialTimeout("tcp", address, 2*time.Second)
		if err != nil {
			return fmt.Errorf("failed to connect: failed to connect to remote host '%v': %w", u.Host, err)
		}
		conn.Close()
		return fmt.Errorf("v0.8.1 would dial %s, which answers here: this build cannot reproduce v0.8.1", address)
	}
	file, err := os.Open(os.ExpandEnv("${HOME}/.ssh/config"))
	if err != nil {
		return nil // no ssh_config: v0.8.1 and v0.8.3 both dial 22
	}
	defer file.Close()
	config, err := ssh_config.Decode(file)
	if err != nil {
		return nil
	}
	port, err := config.Get(u.Hostname(), "Port")
	if err != nil || port == "" || port == "22" {
		return nil
	}
	hostName := u.Hostname()
	if configured, err := config.Get(u.Hostname(), "HostName"); err == nil && configured != "" {
		hostName = configured
	}
	address := net.JoinHostPort(hostName, "22") // v0.8.1 dialHost: port 22 whatever ssh_config says
	conn, err := net.DialTimeout("tcp", address, 2*time.Second)
	if err != nil {
		return fmt.Errorf("failed to connect: failed to connect to remote host '%v': %w", u.Hostname(), err)
	}
	conn.Close()
	return fmt.Errorf("v0.8.1 would dial %s (it never reads ssh_config's Port %s), which answers here: this build "+
		"cannot reproduce v0.8.1", address, port)
}

// interfaceAddressesAsV081 repeats v0.8.1 libvirt/domain.go domainGetIfacesInfo: for a running domain,
// DomainInterfaceAddresses from the agent (qemu_agent) or the DHCP leases, and any error is fatal.
func interfaceAddressesAsV081(d *schema.ResourceData) error {
	configuredURI.Lock()
	rawURI := configuredURI.value
	configuredURI.Unlock()
	id, err := uuid.Parse(d.Id())
	if err != nil {
		return nil // not created yet or not a domain UUID: the upstream Read reports it
	}
	u, err := libvirturi.Parse(rawURI)
	if err != nil {
		return err
	}
	conn := golibvirt.NewWithDialer(u)
	if err := conn.ConnectToURI(golibvirt.ConnectURI(u.RemoteName())); err != nil {
		return fmt.Errorf("failed to connect: %w", err)
	}
	defer conn.ConnectClose()
	dom, err := conn.DomainLookupByUUID(golibvirt.UUID(id))
	if err != nil {
		return nil // gone: the upstream Read removes it from state
	}
	state, _, err := conn.DomainGetState(dom, 0)
	if err != nil {
		return fmt.Errorf("couldn't get state of domain: %w", err)
	}
	if golibvirt.DomainState(state) != golibvirt.DomainRunning {
		return nil
	}
	source := uint32(golibvirt.DomainInterfaceAddressesSrcLease)
	if d.Get("qemu_agent").(bool) {
		source = uint32(golibvirt.DomainInterfaceAddressesSrcAgent)
	}
	if _, err := conn.DomainInterfaceAddresses(dom, source, 0); err != nil {
		return fmt.Errorf("error retrieving interface addresses: %w", err)
	}
	return nil
}

// urlSourceAsV081 repeats v0.8.1 libvirt/volume_image.go httpImage.IsQCOW2 and the format checks of
// resource_libvirt_volume.go resourceLibvirtVolumeCreate for an http(s) source.
func urlSourceAsV081(d *schema.ResourceData) error {
	source, ok := d.GetOk("source")
	if !ok {
		return nil
	}
	u, err := url.Parse(source.(string))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil // a local file: v0.8.1 and v0.8.3 read its header the same way
	}
	isQCOW2, err := httpIsQCOW2(u)
	if err != nil {
		return fmt.Errorf("error while determining image type for %s: %w", u.String(), err)
	}
	givenFormat, isFormatGiven := d.GetOk("format")
	if isFormatGiven && isQCOW2 && givenFormat.(string) != "qcow2" {
		return fmt.Errorf("format other than QCOW2 explicitly specified for image detected as QCOW2 image: %s", u.String())
	}
	byExtension := strings.HasSuffix(strings.ToLower(u.Path), ".qcow2")
	if !isFormatGiven && isQCOW2 != byExtension {
		// v0.8.1 takes the format from the magic, v0.8.3 from the extension: this build cannot do what
		// the real provider would, so it refuses.
		return fmt.Errorf("image %s: qcow2 by its header is %t but by its name %t; give `format` explicitly", u.String(), isQCOW2, byExtension)
	}
	return nil
}

func httpIsQCOW2(u *url.URL) (bool, error) {
	req, _ := http.NewRequest("GET", u.String(), nil)
	req.Header.Set("Range", "bytes=0-7")
	response, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusPartialContent {
		return false, fmt.Errorf("can't retrieve partial header of resource to determine file type: %s - %s", u.String(), response.Status)
	}
	header, err := io.ReadAll(response.Body)
	if err != nil {
		return false, err
	}
	if len(header) < 8 {
		return false, fmt.Errorf("can't retrieve read header of resource to determine file type: %s - %d bytes read", u.String(), len(header))
	}
	return isQCOW2Header(header)
}

// v0.8.1 libvirt/volume_image.go isQCOW2Header: "QFI\xfb" and version 3 exactly; a version 2 image
// counts as not qcow2.
func isQCOW2Header(header []byte) (bool, error) {
	if len(header) < 8 {
		return false, fmt.Errorf("expected header of 8 bytes. Got %d", len(header))
	}
	return string(header[0:8]) == "QFI\xfb\x00\x00\x00\x03", nil
}
